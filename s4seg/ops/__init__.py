"""Fused operations: public functional API, the plain-torch reference, and the
Triton kernel (imported lazily, only when used)."""

from s4seg.ops.confidence_masked_ce import confidence_masked_cross_entropy
from s4seg.ops.reference import confidence_masked_cross_entropy_reference
from s4seg.ops.stats import PseudoLabelStats

__all__ = [
    "PseudoLabelStats",
    "confidence_masked_cross_entropy",
    "confidence_masked_cross_entropy_reference",
]
