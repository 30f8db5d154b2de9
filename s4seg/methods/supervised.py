"""Supervised-only training: the baseline that a semi-supervised method must beat."""

from __future__ import annotations

from s4seg.methods.base import Method

__all__ = ["Supervised"]


class Supervised(Method):
    """Cross-entropy on the labelled batches only; draws no unlabelled data."""

    name = "supervised"
