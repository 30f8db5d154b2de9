"""Self-training cross-entropy on the pseudo-labels a filter keeps."""

from __future__ import annotations

from torch import Tensor, nn

from s4seg.filters import FilterDecision
from s4seg.filters.base import pseudo_targets
from s4seg.ops.confidence_masked_ce import confidence_masked_cross_entropy
from s4seg.ops.reference import NORMALIZATIONS
from s4seg.ops.stats import PseudoLabelStats

__all__ = ["SelfTrainingLoss"]

_BACKENDS = ("auto", "reference", "triton")


class SelfTrainingLoss(nn.Module):
    """Cross-entropy against the argmax pseudo-labels that a filter keeps.

    The self-training term L_st of S4GAN (Mittal, Tatarchenko and Brox,
    "Semi-Supervised Semantic Segmentation with High- and Low-level Consistency",
    TPAMI 2019): the prediction's own argmax (or a teacher's) becomes the target on
    the images and pixels that a :class:`s4seg.filters.PseudoLabelFilter` keeps. The
    per-pixel work is done once by :func:`s4seg.ops.confidence_masked_cross_entropy`.
    With nothing kept the loss is 0 with a zero gradient (the original code skipped
    the term).

    Args:
        ignore_index: target value that is never kept.
        normalize: divide the summed loss by the ``"selected"`` pixels (S4GAN: the
            mean over the pixels of the kept images), the ``"valid"`` pixels or
            ``"all"`` pixels of the batch.
        backend: ``"auto"`` (Triton on CUDA, the plain-torch reference otherwise),
            ``"reference"`` or ``"triton"``.
    """

    def __init__(
        self, ignore_index: int = 255, normalize: str = "selected", backend: str = "auto"
    ) -> None:
        super().__init__()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        self.ignore_index = int(ignore_index)
        self.normalize = normalize
        self.backend = backend

    def forward(
        self, logits: Tensor, decision: FilterDecision, teacher_logits: Tensor | None = None
    ) -> tuple[Tensor, PseudoLabelStats]:
        """The loss and what was kept, in images and in pixels.

        Args:
            logits: the student's logits; the only input that gets a gradient.
            decision: the filter's decision for this batch.
            teacher_logits: logits that give pseudo-labels and confidence instead of
                ``logits`` (e.g. an EMA teacher).

        Returns:
            ``(loss, stats)``: a 0-d float32 loss and tensor counts (no host sync).

        Shape:
            logits, teacher_logits: (B, C, H, W).
        """
        if not isinstance(decision, FilterDecision):
            raise TypeError(
                f"decision must be a FilterDecision (from a filter's decide()), got "
                f"{type(decision).__name__}"
            )
        source = teacher_logits if teacher_logits is not None else logits
        return confidence_masked_cross_entropy(
            logits,
            decision.pixel_threshold,
            teacher_logits=teacher_logits,
            labels=pseudo_targets(source, decision.pixel_keep, self.ignore_index),
            image_keep=decision.image_keep.to(logits.device),
            ignore_index=self.ignore_index,
            normalize=self.normalize,
            backend=self.backend,  # type: ignore[arg-type]
        )

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, normalize={self.normalize!r}, backend={self.backend!r}"
