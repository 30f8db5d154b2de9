"""AdvSemiSeg's semi-supervised rule: trust the pixels the discriminator finds real.

Hung, Tsai, Liou, Lin and Yang, "Adversarial Learning for Semi-Supervised Semantic
Segmentation", BMVC 2018. The fully-convolutional discriminator
(:class:`s4seg.models.pixel_discriminator.PixelDiscriminator`) gives a confidence map,
one probability per **pixel** that the prediction there looks like ground truth; the
argmax of an unlabelled prediction teaches where that map is at least ``mask_T``.
"""

from __future__ import annotations

import operator

import torch
from torch import Tensor

from s4seg.filters.base import (
    FilterDecision,
    _check_logits,
    _check_probabilities,
    _describe,
    _threshold_arg,
    _threshold_at,
)
from s4seg.schedules import Schedule

__all__ = ["ConfidenceMapFilter"]


class ConfidenceMapFilter:
    """Keep a pixel when the discriminator's confidence map there is >= the threshold.

    From step ``start_step`` on (the paper's ``semi_start``), every image is allowed and
    a pixel is kept when ``sigmoid(D(softmax(pred)))`` at it is ``>=`` the threshold
    (``mask_T``, 0.2 in the paper); the softmax confidence plays no part (pixel
    threshold 0). Before ``start_step`` nothing is kept, as the paper waits for the
    discriminator to learn before it trusts its map.

    The threshold is on a probability per **pixel** from the discriminator, not on the
    segmentation's softmax confidence and not on a per-image score: this filter needs
    the map of a :class:`s4seg.models.pixel_discriminator.PixelDiscriminator`, not the
    (B,) score of :class:`s4seg.models.FMDiscriminator`.

    Args:
        threshold: ``mask_T`` in [0, 1], or a schedule of it.
        start_step: first step that keeps pixels, >= 0.
        check_range: check that ``d_prob`` lies in [0, 1] (catches a logit map passed
            for the probability map). Costs one host sync per call, so it is off by
            default; turn it on while wiring a training loop.
    """

    def __init__(
        self,
        threshold: float | Schedule = 0.2,
        start_step: int = 0,
        *,
        check_range: bool = False,
    ) -> None:
        bad_type = TypeError(f"ConfidenceMapFilter start_step must be an int, got {start_step!r}")
        if isinstance(start_step, bool):
            raise bad_type
        try:  # operator.index accepts ints and numpy ints, refuses floats
            start = operator.index(start_step)
        except TypeError:
            raise bad_type from None
        if start < 0:
            raise ValueError(
                f"ConfidenceMapFilter start_step must be an int >= 0 (the first step that keeps "
                f"pixels; the paper's semi_start, e.g. 5000), got {start_step!r}"
            )
        self.threshold = _threshold_arg("ConfidenceMapFilter", threshold)
        self.start_step = start
        self.check_range = check_range

    @property
    def thresholds(self) -> str:
        """What this filter thresholds and in which unit."""
        start = f" (from step {self.start_step})" if self.start_step else ""
        return (
            f"pixel: discriminator confidence map sigmoid(D) per pixel >= "
            f"{_describe(self.threshold)}{start}; softmax confidence: not used; images: all"
        )

    def decide(self, *, logits: Tensor, d_prob: Tensor | None, step: int) -> FilterDecision:
        """Keep the pixels whose confidence-map value reaches the threshold.

        Args:
            logits: the segmentation logits of the unlabelled batch (for the shape).
            d_prob: the discriminator's confidence map, ``sigmoid`` of its per-pixel
                logits. May be None before ``start_step``, when nothing is kept.
            step: training step.

        Shape:
            logits: (B, C, H, W). d_prob: (B, H, W), probabilities.
        """
        _check_logits("ConfidenceMapFilter", logits)
        b, _, h, w = logits.shape
        if d_prob is not None:
            self._check_map(d_prob, (b, h, w))
        if step < self.start_step:
            nothing = torch.zeros((b, h, w), dtype=torch.bool, device=logits.device)
            return FilterDecision(
                image_keep=torch.zeros(b, dtype=torch.bool, device=logits.device),
                pixel_threshold=torch.zeros((), dtype=torch.float32, device=logits.device),
                pixel_keep=nothing,
            )
        if d_prob is None:
            raise ValueError(
                f"ConfidenceMapFilter needs the discriminator's confidence map from step "
                f"{self.start_step} on: pass d_prob=torch.sigmoid(PixelDiscriminator(softmax)), "
                f"shape (B, H, W)=({b}, {h}, {w})"
            )
        t = _threshold_at("ConfidenceMapFilter", self.threshold, step)
        # The comparison runs in d_prob's dtype (a Python float does not promote a
        # tensor), like DiscriminatorGate's.
        return FilterDecision(
            image_keep=torch.ones(b, dtype=torch.bool, device=logits.device),
            pixel_threshold=torch.zeros((), dtype=torch.float32, device=logits.device),
            pixel_keep=d_prob.detach() >= t,
        )

    def _check_map(self, d_prob: Tensor, shape: tuple[int, int, int]) -> None:
        if tuple(d_prob.shape) != shape:
            raise ValueError(
                f"ConfidenceMapFilter needs the pixel discriminator's confidence map of shape "
                f"(B, H, W)={shape}, one probability per pixel, got {tuple(d_prob.shape)}; a "
                f"per-image score (B,) does not fit: use PixelDiscriminator and "
                f"torch.sigmoid of its output, at the logits' resolution"
            )
        _check_probabilities(d_prob, self.check_range, "the discriminator's logits")

    def __repr__(self) -> str:
        return (
            f"ConfidenceMapFilter(threshold={_describe(self.threshold)}, "
            f"start_step={self.start_step})"
        )
