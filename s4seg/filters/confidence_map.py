"""AdvSemiSeg's semi-supervised rule: trust the pixels the discriminator finds real.

Hung, Tsai, Liou, Lin and Yang, "Adversarial Learning for Semi-Supervised Semantic
Segmentation", BMVC 2018. The fully-convolutional discriminator
(:class:`s4seg.models.pixel_discriminator.PixelDiscriminator`) gives a confidence map,
one probability per **pixel** that the prediction there looks like ground truth; the
argmax of an unlabelled prediction teaches where that map is at least ``mask_T``
(the filter's ``threshold``).
"""

from __future__ import annotations

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

    Every image is allowed and a pixel is kept when ``sigmoid(D(softmax(pred)))`` at
    it is ``>=`` the threshold (``mask_T``, 0.2 in the paper); the softmax confidence
    plays no part (pixel threshold 0). When self-training starts (the paper's
    ``semi_start``) is the self-training part's ``start_step``, not the filter's.

    The threshold is on a probability per **pixel** from the discriminator, not on the
    segmentation's softmax confidence and not on a per-image score: this filter needs
    the map of a :class:`s4seg.models.PixelDiscriminator`, not the (B,) score of
    :class:`s4seg.models.FMDiscriminator`.

    Args:
        threshold: ``mask_T`` in [0, 1], or a schedule of it.
        check_range: check that ``pixel_scores`` lie in [0, 1] (catches a logit map
            passed for the probability map). Costs one host sync per call, so it is
            off by default; turn it on while wiring a training loop.
    """

    def __init__(self, threshold: float | Schedule = 0.2, *, check_range: bool = False) -> None:
        self.threshold = _threshold_arg("ConfidenceMapFilter", threshold)
        self.check_range = check_range

    @property
    def thresholds(self) -> str:
        """What this filter thresholds and in which unit."""
        return (
            f"pixel: discriminator confidence map sigmoid(D) per pixel >= "
            f"{_describe(self.threshold)}; softmax confidence: not used; images: all"
        )

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Keep the pixels whose confidence-map value reaches the threshold.

        Args:
            logits: the segmentation logits of the unlabelled batch (for the shape).
            step: training step.
            image_scores: not used.
            pixel_scores: the discriminator's confidence map, ``sigmoid`` of its
                per-pixel logits.

        Shape:
            logits: (B, C, H, W). pixel_scores: (B, H, W), probabilities.
        """
        _check_logits("ConfidenceMapFilter", logits)
        b, _, h, w = logits.shape
        if pixel_scores is None:
            raise ValueError(
                f"ConfidenceMapFilter needs the discriminator's confidence map: pass "
                f"pixel_scores=torch.sigmoid(PixelDiscriminator(softmax)), shape (B, H, W)="
                f"({b}, {h}, {w})"
            )
        if tuple(pixel_scores.shape) != (b, h, w):
            raise ValueError(
                f"ConfidenceMapFilter needs the pixel discriminator's confidence map of shape "
                f"(B, H, W)={(b, h, w)}, one probability per pixel, got "
                f"{tuple(pixel_scores.shape)}; a per-image score (B,) does not fit: use "
                f"PixelDiscriminator and torch.sigmoid of its output, at the logits' resolution"
            )
        _check_probabilities(
            pixel_scores, self.check_range, "pixel_scores", "the discriminator's logits"
        )
        t = _threshold_at("ConfidenceMapFilter", self.threshold, step)
        # The comparison runs in the scores' dtype (a Python float does not promote a
        # tensor), like DiscriminatorGate's.
        return FilterDecision(
            image_keep=torch.ones(b, dtype=torch.bool, device=logits.device),
            pixel_threshold=torch.zeros((), dtype=torch.float32, device=logits.device),
            pixel_keep=pixel_scores.detach() >= t,
        )

    def __repr__(self) -> str:
        return f"ConfidenceMapFilter(threshold={_describe(self.threshold)})"
