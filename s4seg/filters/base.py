"""What every pseudo-label filter shares: the decision, the protocol, the counts.

Filters decide; the fused op (:func:`s4seg.ops.confidence_masked_cross_entropy`,
called by :class:`s4seg.losses.SelfTrainingLoss`) does the per-pixel work once. A
filter returns a :class:`FilterDecision`: a per-image keep mask and a threshold on
each pixel's max softmax probability.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from s4seg.checks import check_count, check_probability, check_real
from s4seg.ops.confidence_masked_ce import resolve_threshold_kind
from s4seg.ops.reference import select_pseudo_labels
from s4seg.ops.stats import PseudoLabelStats
from s4seg.schedules import Constant, Schedule, as_schedule

__all__ = [
    "FilterDecision",
    "PseudoLabelFilter",
    "filter_stats",
    "pseudo_label_selection",
    "pseudo_targets",
]


# eq=False: == on tensor fields would be ambiguous; compare the fields instead.
@dataclass(frozen=True, eq=False)
class FilterDecision:
    """What a filter decided for one batch (all tensors: no host sync).

    Attributes:
        image_keep: images allowed to contribute pseudo-labels.
        pixel_threshold: threshold on each pixel's max softmax probability; a pixel
            of a kept image is kept when its confidence is >= this (0 keeps every
            pixel). 0-d, or (C,) per class, or (B,) per image.
        image_scores: the per-image score the image gate looked at (the
            discriminator's probability), for logs; None without a gate.
        image_threshold: the gate's threshold on ``image_scores`` at this step;
            None without a gate. A 0-d tensor when it depends on the batch (the
            cut-off score of :class:`s4seg.filters.TargetRateGate`), so that no host
            sync is needed; the trainer reads it at the log step.
        pixel_keep: a per-pixel keep mask from a score that is not the softmax
            confidence (a discriminator's confidence map, the entropy); None keeps
            every pixel. It is ANDed with ``pixel_threshold`` and ``image_keep``.

    Shape:
        image_keep: (B,) bool. image_scores: (B,). pixel_keep: (B, H, W) bool.
    """

    image_keep: Tensor
    pixel_threshold: Tensor
    image_scores: Tensor | None = None
    image_threshold: float | Tensor | None = None
    pixel_keep: Tensor | None = None

    def __post_init__(self) -> None:
        if self.image_keep.dim() != 1 or self.image_keep.dtype != torch.bool:
            raise ValueError(
                f"image_keep must be a (B,) bool tensor, got shape {tuple(self.image_keep.shape)} "
                f"and dtype {self.image_keep.dtype}"
            )
        if self.pixel_threshold.dim() > 1 or not self.pixel_threshold.is_floating_point():
            raise ValueError(
                f"pixel_threshold must be a 0-d, (C,) or (B,) float tensor, got shape "
                f"{tuple(self.pixel_threshold.shape)} and dtype {self.pixel_threshold.dtype}"
            )
        pk = self.pixel_keep
        if pk is not None and (
            pk.dim() != 3 or pk.dtype != torch.bool or pk.shape[0] != self.image_keep.shape[0]
        ):
            raise ValueError(
                f"pixel_keep must be a (B, H, W) bool tensor with B={self.image_keep.shape[0]}, "
                f"got shape {tuple(pk.shape)} and dtype {pk.dtype}"
            )


def pseudo_targets(
    source_logits: Tensor, pixel_keep: Tensor | None, ignore_index: int
) -> Tensor | None:
    """Argmax pseudo-labels with ``ignore_index`` where ``pixel_keep`` is False.

    None when there is no pixel mask, so that the fused op takes its own argmax.
    The op selects on ``target != ignore_index``, which is how a per-pixel mask
    reaches it without a second kernel argument.
    """
    if pixel_keep is None:
        return None
    if pixel_keep.shape != source_logits.shape[:1] + source_logits.shape[2:]:
        raise ValueError(
            f"pixel_keep has shape {tuple(pixel_keep.shape)} but the logits are "
            f"{tuple(source_logits.shape)}: decide on the same batch"
        )
    pseudo = source_logits.detach().argmax(dim=1)
    return pseudo.masked_fill(~pixel_keep.to(pseudo.device), ignore_index)


@runtime_checkable
class PseudoLabelFilter(Protocol):
    """Decides which images and pixels of an unlabelled batch become pseudo-labels.

    Attributes:
        thresholds: one line saying what is thresholded and in which unit, e.g.
            ``"image: D(fake) probability per image > 0.2; pixels of kept images: all"``.
    """

    @property
    def thresholds(self) -> str: ...

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Decide for one batch.

        Args:
            logits: the segmentation logits of the unlabelled batch (of the teacher,
                when a teacher makes the pseudo-labels).
            step: training step, for scheduled thresholds.
            image_scores: one score per image, for image gates: the discriminator's
                probability that the prediction is real (S4GAN).
            pixel_scores: one score per pixel from something other than the softmax:
                the pixel discriminator's confidence map (AdvSemiSeg).

        Shape:
            logits: (B, C, H, W). image_scores: (B,). pixel_scores: (B, H, W).
        """
        ...


def _threshold_arg(owner: str, threshold: float | Schedule) -> Schedule:
    """Validate a number now; a schedule's values are checked at each step."""
    if isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        check_probability(
            threshold, "threshold", owner=owner, hint="a probability, not a percentage or a logit"
        )
    return as_schedule(threshold)


def _threshold_at(owner: str, schedule: Schedule, step: int) -> float:
    return _fraction_at(owner, schedule, step, "threshold", "the threshold is a probability")


def _fraction_at(
    owner: str, schedule: Schedule, step: int, what: str, unit: str = "it is a fraction"
) -> float:
    """A scheduled value in [0, 1] at ``step``, or a ValueError naming the schedule."""
    f = schedule(step)
    if not 0.0 <= f <= 1.0:  # also rejects NaN
        raise ValueError(
            f"{owner} {what} at step {step} is {f}, outside [0, 1]; {unit}, fix the "
            f"schedule {schedule!r}"
        )
    return float(f)


def _check_probabilities(scores: Tensor, check_range: bool, name: str, source: str) -> None:
    """Float probabilities; the range check is one host sync, run only when asked."""
    if not scores.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of probabilities, got {scores.dtype}")
    # A logit passed for a probability would otherwise filter silently.
    if check_range and bool(((scores < 0) | (scores > 1) | scores.isnan()).any()):
        raise ValueError(
            f"{name} must be probabilities in [0, 1], got values in "
            f"[{scores.min().item():.4g}, {scores.max().item():.4g}]; apply torch.sigmoid to "
            f"{source}"
        )


def _describe(schedule: Schedule) -> str:
    """``0.2`` for a constant, the schedule's repr otherwise."""
    return repr(schedule.value) if isinstance(schedule, Constant) else repr(schedule)


def _check_logits(owner: str, logits: Tensor, num_classes: int | None = None) -> None:
    if logits.dim() != 4:
        raise ValueError(
            f"{owner}.decide needs logits of shape (B, C, H, W), got {tuple(logits.shape)}"
        )
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ValueError(
            f"{owner} was built for {num_classes} classes but the logits have "
            f"{logits.shape[1]}; build it with num_classes={logits.shape[1]}"
        )


@torch.no_grad()
def pseudo_label_selection(
    decision: FilterDecision,
    logits: Tensor,
    *,
    teacher_logits: Tensor | None = None,
    ignore_index: int = 255,
) -> tuple[Tensor, Tensor]:
    """The pseudo-labels and the pixels a decision keeps, as the reference op selects them.

    Returns:
        ``(pseudo, selected)``: the (B, H, W) int64 pseudo-labels (argmax of
        ``teacher_logits`` or ``logits``; ``ignore_index`` where a pixel mask drops
        a pixel) and the (B, H, W) bool selection that the loss is taken over.
    """
    source = teacher_logits if teacher_logits is not None else logits
    if source.dim() != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(source.shape)}")
    b, c = source.shape[:2]
    if tuple(decision.image_keep.shape) != (b,):
        raise ValueError(
            f"decision.image_keep has shape {tuple(decision.image_keep.shape)} but the batch has "
            f"B={b} images; decide on the same batch"
        )
    threshold = decision.pixel_threshold.to(device=source.device, dtype=torch.float32)
    kind = resolve_threshold_kind(threshold, b, c, "auto")
    pseudo, _, selected = select_pseudo_labels(
        source.detach(),
        threshold,
        kind,
        labels=pseudo_targets(source, decision.pixel_keep, ignore_index),
        image_keep=decision.image_keep.to(source.device),
        ignore_index=ignore_index,
        temperature=1.0,
    )
    return pseudo, selected


@torch.no_grad()
def filter_stats(
    decision: FilterDecision,
    logits: Tensor,
    *,
    teacher_logits: Tensor | None = None,
    ignore_index: int = 255,
) -> PseudoLabelStats:
    """Counts of what a decision keeps, without computing a loss.

    Uses the selection of the reference op, so the counts equal the ``stats``
    returned by :class:`s4seg.losses.SelfTrainingLoss` for the same inputs.

    Args:
        decision: a filter's decision for this batch.
        logits: the prediction whose softmax gives confidence and pseudo-labels
            (unless ``teacher_logits`` is given).
        teacher_logits: logits that give confidence and pseudo-labels instead.
        ignore_index: pseudo-label value that is never kept.

    Returns:
        Kept images (images with at least one kept pixel) out of B, and kept pixels
        out of B*H*W, as tensors.

    Shape:
        logits, teacher_logits: (B, C, H, W).
    """
    _, selected = pseudo_label_selection(
        decision, logits, teacher_logits=teacher_logits, ignore_index=ignore_index
    )
    return PseudoLabelStats.from_mask(selected)


def _momentum_arg(owner: str, momentum: float) -> float:
    """An EMA momentum in [0, 1), or a ValueError that names it."""
    return check_real(
        momentum,
        "momentum",
        low=0.0,
        high=1.0,
        high_open=True,
        owner=owner,
        hint="the weight of the old value in the moving average; 0.999 is FreeMatch's choice",
    )


def _num_classes_arg(owner: str, num_classes: int) -> int:
    return check_count(num_classes, "num_classes", minimum=2, owner=owner)


def _restore_state(
    owner: str, state: dict[str, Tensor], current: dict[str, Tensor]
) -> dict[str, Tensor]:
    """Checked copies of ``state``'s tensors, on the device and dtype of ``current``'s."""
    if set(state) != set(current):
        raise ValueError(
            f"{owner} state has keys {sorted(state)}, expected {sorted(current)}: the checkpoint "
            f"was written by another filter"
        )
    restored = {}
    for key, value in state.items():
        if not torch.is_tensor(value) or value.shape != current[key].shape:
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise ValueError(
                f"{owner} state {key!r} must be a tensor of shape {tuple(current[key].shape)}, "
                f"got {shape}; was the filter built with another num_classes?"
            )
        restored[key] = value.detach().to(current[key].device, current[key].dtype).clone()
    return restored
