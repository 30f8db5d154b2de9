"""Pseudo-label filters: decide which unlabelled images and pixels may teach.

Filters decide; the fused op (:func:`s4seg.ops.confidence_masked_cross_entropy`,
called by :class:`s4seg.losses.SelfTrainingLoss`) does the per-pixel work once. A
filter returns a :class:`FilterDecision`: a per-image keep mask and a threshold on
each pixel's max softmax probability.

Two different things get thresholded, in two different units, and every filter says
which in its ``thresholds`` text:

* :class:`DiscriminatorGate` (the S4GAN rule) thresholds **one score per image**: the
  discriminator's probability that the image's prediction is real.
* :class:`PixelConfidenceFilter` thresholds **one score per pixel**: the largest
  softmax probability of the prediction.

A published analysis of a failed S4GAN run read the gate's image count ("3 of 4
images passed") as a pixel count and drew the wrong conclusion; keep the two apart
in logs (:class:`s4seg.ops.PseudoLabelStats` has separate image and pixel fields).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from s4seg.ops.confidence_masked_ce import _threshold_kind
from s4seg.ops.reference import select_pseudo_labels
from s4seg.ops.stats import PseudoLabelStats
from s4seg.schedules import Constant, Schedule, as_schedule

__all__ = [
    "AndFilter",
    "DiscriminatorGate",
    "FilterDecision",
    "PixelConfidenceFilter",
    "PseudoLabelFilter",
    "filter_stats",
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
            None without a gate.

    Shape:
        image_keep: (B,) bool. image_scores: (B,).
    """

    image_keep: Tensor
    pixel_threshold: Tensor
    image_scores: Tensor | None = None
    image_threshold: float | None = None

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


@runtime_checkable
class PseudoLabelFilter(Protocol):
    """Decides which images and pixels of an unlabelled batch become pseudo-labels.

    Attributes:
        thresholds: one line saying what is thresholded and in which unit, e.g.
            ``"image: D(fake) probability per image > 0.2; pixels of kept images: all"``.
    """

    @property
    def thresholds(self) -> str: ...

    def decide(self, *, logits: Tensor, d_prob: Tensor | None, step: int) -> FilterDecision:
        """Decide for one batch.

        Args:
            logits: the segmentation logits of the unlabelled batch.
            d_prob: the discriminator's probability per image (needed by a gate).
            step: training step, for scheduled thresholds.

        Shape:
            logits: (B, C, H, W). d_prob: (B,).
        """
        ...


def _threshold_arg(owner: str, threshold: float | Schedule) -> Schedule:
    """Validate a number now; a schedule's values are checked at each step."""
    if isinstance(threshold, numbers.Real) and not isinstance(threshold, bool):
        t = float(threshold)
        if not 0.0 <= t <= 1.0:  # also rejects NaN
            raise ValueError(
                f"{owner} threshold must be in [0, 1] (a probability, not a percentage or a "
                f"logit), got {t}"
            )
    return as_schedule(threshold)


def _threshold_at(owner: str, schedule: Schedule, step: int) -> float:
    t = schedule(step)
    if not 0.0 <= t <= 1.0:  # also rejects NaN
        raise ValueError(
            f"{owner} threshold at step {step} is {t}, outside [0, 1]; the threshold is a "
            f"probability, fix the schedule {schedule!r}"
        )
    return float(t)


def _describe(schedule: Schedule) -> str:
    """``0.2`` for a constant, the schedule's repr otherwise."""
    return repr(schedule.value) if isinstance(schedule, Constant) else repr(schedule)


def _check_logits(owner: str, logits: Tensor) -> None:
    if logits.dim() != 4:
        raise ValueError(
            f"{owner}.decide needs logits of shape (B, C, H, W), got {tuple(logits.shape)}"
        )


class DiscriminatorGate:
    """Image-level discriminator gate: the S4GAN self-training rule.

    Keeps an unlabelled image when the discriminator's probability for its prediction
    is strictly above the threshold (``>``, as in the original code), and then keeps
    every pixel of it, each labelled with its argmax (pixel threshold 0). From Mittal,
    Tatarchenko and Brox, "Semi-Supervised Semantic Segmentation with High- and
    Low-level Consistency", TPAMI 2019.

    The threshold is on a probability per **image**, not on pixel confidence: with a
    fresh discriminator (scores near 0.5) almost every image passes 0.2, and when the
    discriminator learns to score every prediction near 0 none does, whatever the
    pixels look like.

    Args:
        threshold: gate threshold in [0, 1], or a schedule of it.
        check_range: check that ``d_prob`` lies in [0, 1] (catches a logit passed for
            a probability). Costs one host sync per call; turn off in a hot loop once
            the wiring is known to be right.
    """

    def __init__(self, threshold: float | Schedule = 0.2, *, check_range: bool = True) -> None:
        self.threshold = _threshold_arg("DiscriminatorGate", threshold)
        self.check_range = check_range

    @property
    def thresholds(self) -> str:
        """What this filter thresholds and in which unit."""
        return (
            f"image: discriminator D(fake) probability per image > {_describe(self.threshold)} "
            f"(strict); pixels of kept images: all (pixel threshold 0)"
        )

    def decide(self, *, logits: Tensor, d_prob: Tensor | None, step: int) -> FilterDecision:
        """Keep the images whose discriminator probability is above the threshold.

        Shape:
            logits: (B, C, H, W). d_prob: (B,), probabilities (after sigmoid).
        """
        _check_logits("DiscriminatorGate", logits)
        b = logits.shape[0]
        if d_prob is None:
            raise ValueError(
                "DiscriminatorGate needs discriminator probabilities: pass "
                "d_prob=torch.sigmoid(d_logit) with one value per unlabelled image, shape (B,)"
            )
        if tuple(d_prob.shape) != (b,):
            raise ValueError(
                f"d_prob must have shape (B,)=({b},), one probability per image, got "
                f"{tuple(d_prob.shape)}; reshape with d_prob.reshape(-1) if it is (B, 1)"
            )
        if not d_prob.is_floating_point():
            raise TypeError(f"d_prob must be a float tensor of probabilities, got {d_prob.dtype}")
        # One host sync: a logit passed for a probability would otherwise gate silently.
        if self.check_range and bool(((d_prob < 0) | (d_prob > 1) | d_prob.isnan()).any()):
            raise ValueError(
                f"d_prob must be probabilities in [0, 1], got values in "
                f"[{d_prob.min().item():.4g}, {d_prob.max().item():.4g}]; apply torch.sigmoid to "
                f"the discriminator's logit"
            )
        t = _threshold_at("DiscriminatorGate", self.threshold, step)
        scores = d_prob.detach()
        # The comparison runs in d_prob's dtype (a Python float does not promote a
        # tensor): float32 0.2 is not > 0.2.
        return FilterDecision(
            image_keep=scores > t,
            pixel_threshold=torch.zeros((), dtype=torch.float32, device=logits.device),
            image_scores=scores,
            image_threshold=t,
        )

    def __repr__(self) -> str:
        return f"DiscriminatorGate(threshold={_describe(self.threshold)})"


class PixelConfidenceFilter:
    """Pixel-level confidence filter: keep a pixel when its max softmax probability >= t.

    Every image is allowed; within it, only confident pixels teach (the FixMatch-style
    rule, Sohn et al. 2020, applied per pixel).

    Args:
        threshold: confidence threshold in [0, 1], or a schedule of it.
    """

    def __init__(self, threshold: float | Schedule = 0.9) -> None:
        self.threshold = _threshold_arg("PixelConfidenceFilter", threshold)

    @property
    def thresholds(self) -> str:
        """What this filter thresholds and in which unit."""
        return (
            f"pixel: max softmax probability per pixel >= {_describe(self.threshold)}; images: all"
        )

    def decide(self, *, logits: Tensor, d_prob: Tensor | None = None, step: int) -> FilterDecision:
        """Allow every image; threshold each pixel's confidence.

        ``d_prob`` is not used.

        Shape:
            logits: (B, C, H, W).
        """
        _check_logits("PixelConfidenceFilter", logits)
        t = _threshold_at("PixelConfidenceFilter", self.threshold, step)
        return FilterDecision(
            image_keep=torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device),
            pixel_threshold=torch.tensor(t, dtype=torch.float32, device=logits.device),
        )

    def __repr__(self) -> str:
        return f"PixelConfidenceFilter(threshold={_describe(self.threshold)})"


class AndFilter:
    """Keep what every part keeps: image keep masks ANDed, pixel thresholds maxed.

    ``AndFilter(DiscriminatorGate(0.2), PixelConfidenceFilter(0.9))`` keeps the
    confident pixels of the images the discriminator accepts.

    Args:
        *filters: the parts, at least one.
    """

    def __init__(self, *filters: PseudoLabelFilter) -> None:
        if not filters:
            raise ValueError("AndFilter needs at least one filter, e.g. AndFilter(gate, pixel)")
        for f in filters:
            if not callable(getattr(f, "decide", None)):
                raise TypeError(f"AndFilter parts must have a decide() method, got {f!r}")
        self.filters = tuple(filters)

    @property
    def thresholds(self) -> str:
        """What the parts threshold, joined with AND."""
        return " AND ".join(f"({f.thresholds})" for f in self.filters)

    def decide(self, *, logits: Tensor, d_prob: Tensor | None, step: int) -> FilterDecision:
        """AND of the parts' image masks, max of their pixel thresholds.

        The image score and threshold reported are those of the first part that has
        them (the gate).

        Shape:
            logits: (B, C, H, W). d_prob: (B,).
        """
        decisions = [f.decide(logits=logits, d_prob=d_prob, step=step) for f in self.filters]
        keep = decisions[0].image_keep
        threshold = decisions[0].pixel_threshold
        for d in decisions[1:]:
            keep = keep & d.image_keep
            if (
                threshold.dim()
                and d.pixel_threshold.dim()
                and threshold.shape != d.pixel_threshold.shape
            ):
                raise ValueError(
                    f"cannot combine pixel thresholds of shapes {tuple(threshold.shape)} and "
                    f"{tuple(d.pixel_threshold.shape)}: combine per-class with per-class, or use "
                    f"scalar thresholds"
                )
            threshold = torch.maximum(threshold, d.pixel_threshold)
        gated = next((d for d in decisions if d.image_scores is not None), None)
        return FilterDecision(
            image_keep=keep,
            pixel_threshold=threshold,
            image_scores=None if gated is None else gated.image_scores,
            image_threshold=None if gated is None else gated.image_threshold,
        )

    def __repr__(self) -> str:
        return f"AndFilter({', '.join(repr(f) for f in self.filters)})"


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
    kind = _threshold_kind(threshold, b, c, "auto")
    _, _, selected = select_pseudo_labels(
        source.detach(),
        threshold,
        kind,
        labels=None,
        image_keep=decision.image_keep.to(source.device),
        ignore_index=ignore_index,
        temperature=1.0,
    )
    return PseudoLabelStats.from_mask(selected)
