"""What a step changes before its first update, kept so that the step can be undone.

A step whose update is skipped (non-finite values) must leave the networks' buffers
(BatchNorm running statistics) as they were; a step interrupted before any optimizer
stepped is rolled back whole (loader positions, random states, train counts), so an
emergency checkpoint is exactly the end of the step before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["BufferSnapshot", "StepStart"]


class BufferSnapshot:
    """Copies of networks' buffers, refreshed in place each step (no allocation)."""

    def __init__(self) -> None:
        self.tensors: list[Tensor] = []
        self.copies: list[Tensor] = []

    def take(self, modules: Iterable[nn.Module]) -> None:
        """Copy the buffers of ``modules`` (each shared buffer once)."""
        seen: dict[int, Tensor] = {}
        for m in modules:
            for b in m.buffers():
                seen.setdefault(id(b), b)
        tensors = list(seen.values())
        same = len(tensors) == len(self.tensors) and all(
            a is b and a.shape == c.shape and a.dtype == c.dtype
            for a, b, c in zip(tensors, self.tensors, self.copies, strict=True)
        )
        if not same:
            self.tensors, self.copies = tensors, [t.detach().clone() for t in tensors]
        elif tensors:
            with torch.no_grad():
                torch._foreach_copy_(self.copies, tensors)

    def restore(self, only: Iterable[Tensor] | None) -> None:
        """Copy back every buffer taken, or only those in ``only``."""
        ids = None if only is None else {id(t) for t in only}
        with torch.no_grad():
            for t, c in zip(self.tensors, self.copies, strict=True):
                if ids is None or id(t) in ids:
                    t.copy_(c)


@dataclass
class StepStart:
    """The state a step changes before its first optimizer step (see Trainer._begin_step)."""

    buffers: BufferSnapshot = dataclasses.field(default_factory=BufferSnapshot)
    confusion: Tensor | None = None
    loaders: dict[str, Any] = dataclasses.field(default_factory=dict)
    drawn: set[str] = dataclasses.field(default_factory=set)
    rng: tuple[Any, Any, Any] = (None, None, None)
    nonfinite: tuple[dict[str, int], dict[str, int]] = ({}, {})
