"""Target-rate gate: keep a fixed fraction of each batch, ranked by score.

A threshold on the discriminator's probability starves when the discriminator
learns to score every prediction near 0 and floods when it scores every one near 1
(the failed S4GAN run of the field report: 3-4 of 4 images passed a 0.2 gate early
on, 0 of 4 from iteration 1600 on). Ranking instead of thresholding keeps the same
share of each batch whatever the discriminator's calibration does: the gate keeps
the images the discriminator prefers, not the ones above a number it may never
reach again.
"""

from __future__ import annotations

import math
import numbers
from typing import Literal

import torch
from torch import Tensor

from s4seg.distributed import all_gather_cat, is_distributed
from s4seg.filters.base import FilterDecision, _check_logits, _describe, _fraction_at
from s4seg.ops.reference import select_pseudo_labels
from s4seg.schedules import Schedule, as_schedule

__all__ = ["TargetRateGate", "kept_count"]


def kept_count(rate: float, n: int) -> int:
    """How many of ``n`` items a rate keeps: ``ceil(rate * n)``, at least 1 when rate > 0.

    ``rate * n`` is rounded to 9 decimals first so that float noise
    (``0.3 * 10 == 3.0000000000000004``) does not add an item.

    Args:
        rate: fraction to keep, in [0, 1].
        n: number of items, >= 0.
    """
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        raise ValueError(f"rate must be in [0, 1] (a fraction of the batch), got {rate}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    k = math.ceil(round(rate * n, 9))
    if rate > 0 and n > 0:
        k = max(k, 1)
    return min(k, n)


class TargetRateGate:
    """Keep the top ``rate`` fraction of each batch: images by D score, or pixels by confidence.

    ``by="image"`` keeps the ``ceil(rate * B)`` images with the highest
    discriminator probability D(fake) (ties broken by :func:`torch.topk`), and every
    pixel of them, as the S4GAN gate does (Mittal et al., TPAMI 2019) but by rank
    instead of by a fixed threshold. ``by="pixel"`` keeps the pixels of the batch
    whose max softmax probability is at least the ``ceil(rate * B*H*W)``-th largest
    (a per-batch quantile; ties at the cut-off may keep a few more); every image is
    allowed.

    Neither can starve nor flood: with ``rate`` in (0, 1) some but not all of every
    batch teaches, whatever the scores' calibration. The cut-off is computed on the
    device (:func:`torch.topk` / :func:`torch.kthvalue`), with no host sync.

    Args:
        rate: fraction to keep in [0, 1], or a schedule of it (e.g.
            ``Linear(0.2, 0.8, steps=20_000)`` to trust more pseudo-labels as the
            model improves).
        by: ``"image"`` (rank images by D(fake), needs ``d_prob``) or ``"pixel"``
            (rank pixels by confidence).
    """

    def __init__(
        self, rate: float | Schedule = 0.5, *, by: Literal["image", "pixel"] = "image"
    ) -> None:
        if isinstance(rate, numbers.Real) and not isinstance(rate, bool):
            r = float(rate)
            if not 0.0 <= r <= 1.0:  # also rejects NaN
                raise ValueError(
                    f"TargetRateGate rate must be in [0, 1] (the fraction of the batch to keep, "
                    f"not a percentage), got {r}"
                )
        if by not in ("image", "pixel"):
            raise ValueError(f"TargetRateGate by must be 'image' or 'pixel', got {by!r}")
        self.rate = as_schedule(rate)
        self.by = by

    @property
    def thresholds(self) -> str:
        """What this filter ranks and keeps, and in which unit."""
        q = _describe(self.rate)
        if self.by == "image":
            return (
                f"image: top {q} fraction of each batch by discriminator D(fake) probability per "
                f"image (ceil(rate*B) images, a rank, not a fixed threshold); pixels of kept "
                f"images: all"
            )
        return (
            f"pixel: top {q} fraction of the batch's pixels by max softmax probability "
            f"(per-batch cut-off); images: all"
        )

    def rate_at(self, step: int) -> float:
        """The fraction kept at ``step``."""
        return _fraction_at("TargetRateGate", self.rate, step, "rate")

    def decide(self, *, logits: Tensor, d_prob: Tensor | None, step: int) -> FilterDecision:
        """Keep the top fraction of images (by ``d_prob``) or of pixels (by confidence).

        Shape:
            logits: (B, C, H, W). d_prob: (B,), probabilities (needed for ``by="image"``).
        """
        _check_logits("TargetRateGate", logits)
        rate = self.rate_at(step)
        if self.by == "image":
            return self._by_image(logits, d_prob, rate)
        return self._by_pixel(logits, rate)

    def _by_image(self, logits: Tensor, d_prob: Tensor | None, rate: float) -> FilterDecision:
        b = logits.shape[0]
        if d_prob is None:
            raise ValueError(
                "TargetRateGate(by='image') ranks images by the discriminator's probability: "
                "pass d_prob (B,), or use by='pixel' to rank pixels by confidence"
            )
        if tuple(d_prob.shape) != (b,):
            raise ValueError(
                f"d_prob must have shape (B,)=({b},), one probability per image, got "
                f"{tuple(d_prob.shape)}"
            )
        scores = d_prob.detach()
        if is_distributed():  # one cut-off over all ranks' images, so every rank agrees
            everyone = all_gather_cat(scores)
            k = kept_count(rate, everyone.numel())
            cutoff = torch.topk(everyone, max(k, 1)).values[-1] if k else scores.new_ones(())
            keep = scores >= cutoff if k else torch.zeros_like(scores, dtype=torch.bool)
            return FilterDecision(
                image_keep=keep,
                pixel_threshold=torch.zeros((), dtype=torch.float32, device=logits.device),
                image_scores=scores,
                image_threshold=cutoff,
            )
        k = kept_count(rate, b)
        keep = torch.zeros(b, dtype=torch.bool, device=scores.device)
        if k == 0:
            cutoff = scores.new_ones(())  # nothing kept; logged as the top of the scale
        else:
            top = torch.topk(scores, k, sorted=True)
            keep = keep.scatter(0, top.indices, True)
            cutoff = top.values[-1]  # the lowest kept score, a 0-d tensor (no host sync)
        return FilterDecision(
            image_keep=keep,
            pixel_threshold=torch.zeros((), dtype=torch.float32, device=logits.device),
            image_scores=scores,
            image_threshold=cutoff,
        )

    def _by_pixel(self, logits: Tensor, rate: float) -> FilterDecision:
        b = logits.shape[0]
        # The reference op's confidence, so that the cut-off compares like with like.
        _, confidence, _ = select_pseudo_labels(
            logits.detach(),
            torch.zeros((), device=logits.device),
            "scalar",
            labels=None,
            image_keep=None,
            ignore_index=-1,
            temperature=1.0,
        )
        # Under torchrun the quantile is taken over all ranks' pixels, so all agree.
        flat = all_gather_cat(confidence.reshape(-1))
        k = kept_count(rate, flat.numel())
        if k == 0:
            keep = torch.zeros(b, dtype=torch.bool, device=logits.device)
            threshold = torch.ones((), dtype=torch.float32, device=logits.device)
        else:
            keep = torch.ones(b, dtype=torch.bool, device=logits.device)
            # The k-th largest value is the (n - k + 1)-th smallest.
            threshold = torch.kthvalue(flat, flat.numel() - k + 1).values.float()
        return FilterDecision(image_keep=keep, pixel_threshold=threshold)

    def __repr__(self) -> str:
        return f"TargetRateGate(rate={_describe(self.rate)}, by={self.by!r})"
