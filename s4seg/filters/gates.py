"""The S4GAN image gate, the pixel-confidence filter and their AND.

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

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from s4seg.filters.base import (
    FilterDecision,
    PseudoLabelFilter,
    _check_logits,
    _check_probabilities,
    _describe,
    _threshold_arg,
    _threshold_at,
)
from s4seg.schedules import Schedule

__all__ = ["AndFilter", "DiscriminatorGate", "PixelConfidenceFilter"]


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
        check_range: check that ``image_scores`` lie in [0, 1] (catches a logit passed for
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

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Keep the images whose discriminator probability is above the threshold.

        ``pixel_scores`` are not used.

        Shape:
            logits: (B, C, H, W). image_scores: (B,), probabilities (after sigmoid).
        """
        _check_logits("DiscriminatorGate", logits)
        b = logits.shape[0]
        if image_scores is None:
            raise ValueError(
                "DiscriminatorGate needs discriminator probabilities: pass "
                "image_scores=torch.sigmoid(d_logit) with one value per unlabelled image, "
                "shape (B,)"
            )
        if tuple(image_scores.shape) != (b,):
            raise ValueError(
                f"image_scores must have shape (B,)=({b},), one probability per image, got "
                f"{tuple(image_scores.shape)}; reshape with .reshape(-1) if it is (B, 1)"
            )
        _check_probabilities(
            image_scores, self.check_range, "image_scores", "the discriminator's logit"
        )
        t = _threshold_at("DiscriminatorGate", self.threshold, step)
        scores = image_scores.detach()
        # The comparison runs in the scores' dtype (a Python float does not promote a
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

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Allow every image; threshold each pixel's confidence.

        ``image_scores`` and ``pixel_scores`` are not used.

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
        parts: more parts, after ``filters``: the keyword form, for config files
            (``parts: [{class_path: ...}, ...]``), which cannot fill ``*filters``.
    """

    def __init__(
        self, *filters: PseudoLabelFilter, parts: Sequence[PseudoLabelFilter] = ()
    ) -> None:
        filters = (*filters, *parts)
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

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """AND of the parts' image masks and pixel masks, max of their pixel thresholds.

        Every part gets both kinds of score, so an image gate (on ``image_scores``)
        combines with a confidence-map filter (on ``pixel_scores``). The image score
        and threshold reported are those of the first part that has them (the gate).

        Shape:
            logits: (B, C, H, W). image_scores: (B,). pixel_scores: (B, H, W).
        """
        decisions = [
            f.decide(logits=logits, step=step, image_scores=image_scores, pixel_scores=pixel_scores)
            for f in self.filters
        ]
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
        pixel_keep = None
        for d in decisions:
            if d.pixel_keep is not None:
                pixel_keep = d.pixel_keep if pixel_keep is None else pixel_keep & d.pixel_keep
        return FilterDecision(
            image_keep=keep,
            pixel_threshold=threshold,
            image_scores=None if gated is None else gated.image_scores,
            image_threshold=None if gated is None else gated.image_threshold,
            pixel_keep=pixel_keep,
        )

    def state_dict(self) -> dict[str, Any]:
        """The state of the parts that have one, keyed by their position.

        Lets the trainer checkpoint a stateful part (an adaptive threshold) that is
        wrapped in an AndFilter; ``{}`` when no part has state.
        """
        return {
            str(i): f.state_dict()  # type: ignore[attr-defined]
            for i, f in enumerate(self.filters)
            if callable(getattr(f, "state_dict", None))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the parts must be the same kinds in the same order."""
        expected = set(self.state_dict())
        if set(state) != expected:
            raise ValueError(
                f"AndFilter state has parts {sorted(state)} but this filter's stateful parts are "
                f"{sorted(expected)}: build the AndFilter with the same parts in the same order"
            )
        for key, part_state in state.items():
            self.filters[int(key)].load_state_dict(part_state)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"AndFilter({', '.join(repr(f) for f in self.filters)})"
