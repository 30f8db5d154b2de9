"""Target rates: keep a fixed fraction of each batch, images by D score or pixels by confidence.

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

import torch
from torch import Tensor

from s4seg.checks import check_probability
from s4seg.distributed import all_gather_cat, is_distributed
from s4seg.filters.base import FilterDecision, _check_logits, _describe, _fraction_at
from s4seg.ops.reference import select_pseudo_labels
from s4seg.schedules import Schedule, as_schedule

__all__ = ["TargetRateFilter", "TargetRateGate", "kept_count"]


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


def _rate_arg(owner: str, rate: float | Schedule) -> Schedule:
    if isinstance(rate, numbers.Real) and not isinstance(rate, bool):
        check_probability(
            rate, "rate", owner=owner, hint="the fraction of the batch to keep, not a percentage"
        )
    return as_schedule(rate)


class TargetRateGate:
    """Keep the top ``rate`` fraction of each batch's images by discriminator score.

    Keeps the ``ceil(rate * B)`` images with the highest discriminator probability
    D(fake) (ties broken by :func:`torch.topk`), and every pixel of them, as the S4GAN
    gate does (Mittal et al., TPAMI 2019) but by rank instead of by a fixed threshold.
    With ``rate`` in (0, 1) it can neither starve nor flood: some but not all of every
    batch teaches, whatever the scores' calibration. The cut-off is computed on the
    device (:func:`torch.topk`), with no host sync; under torchrun it is one cut-off
    over all ranks' images.

    Args:
        rate: fraction of images to keep in [0, 1], or a schedule of it (e.g.
            ``Linear(0.2, 0.8, steps=20_000)`` to trust more images as the model improves).
    """

    def __init__(self, rate: float | Schedule = 0.5) -> None:
        self.rate = _rate_arg("TargetRateGate", rate)

    @property
    def thresholds(self) -> str:
        """What this gate ranks and keeps, and in which unit."""
        return (
            f"image: top {_describe(self.rate)} fraction of each batch by discriminator D(fake) "
            f"probability per image (ceil(rate*B) images, a rank, not a fixed threshold); "
            f"pixels of kept images: all"
        )

    def rate_at(self, step: int) -> float:
        """The fraction kept at ``step``."""
        return _fraction_at("TargetRateGate", self.rate, step, "rate")

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Keep the top fraction of images by ``image_scores``.

        Shape:
            logits: (B, C, H, W). image_scores: (B,), probabilities.
        """
        _check_logits("TargetRateGate", logits)
        rate = self.rate_at(step)
        b = logits.shape[0]
        if image_scores is None:
            raise ValueError(
                "TargetRateGate ranks images by the discriminator's probability: pass "
                "image_scores (B,), or use TargetRateFilter to rank pixels by confidence"
            )
        if tuple(image_scores.shape) != (b,):
            raise ValueError(
                f"image_scores must have shape (B,)=({b},), one probability per image, got "
                f"{tuple(image_scores.shape)}"
            )
        scores = image_scores.detach()
        no_pixel_threshold = torch.zeros((), dtype=torch.float32, device=logits.device)
        if is_distributed():  # one cut-off over all ranks' images, so every rank agrees
            everyone = all_gather_cat(scores)
            k = kept_count(rate, everyone.numel())
            cutoff = torch.topk(everyone, max(k, 1)).values[-1] if k else scores.new_ones(())
            keep = scores >= cutoff if k else torch.zeros_like(scores, dtype=torch.bool)
            return FilterDecision(keep, no_pixel_threshold, scores, cutoff)
        k = kept_count(rate, b)
        keep = torch.zeros(b, dtype=torch.bool, device=scores.device)
        if k == 0:
            cutoff = scores.new_ones(())  # nothing kept; logged as the top of the scale
        else:
            top = torch.topk(scores, k, sorted=True)
            keep = keep.scatter(0, top.indices, True)
            cutoff = top.values[-1]  # the lowest kept score, a 0-d tensor (no host sync)
        return FilterDecision(keep, no_pixel_threshold, scores, cutoff)

    def __repr__(self) -> str:
        return f"TargetRateGate(rate={_describe(self.rate)})"


class TargetRateFilter:
    """Keep the top ``rate`` fraction of each batch's pixels by softmax confidence.

    Keeps the pixels whose max softmax probability is at least the
    ``ceil(rate * B*H*W)``-th largest of the batch (a per-batch quantile; ties at the
    cut-off may keep a few more); every image is allowed. Cannot starve: some pixels
    of every batch teach, however unsure the model. The cut-off is computed on the
    device (:func:`torch.kthvalue`), over all ranks' pixels under torchrun.

    Args:
        rate: fraction of pixels to keep in [0, 1], or a schedule of it.
    """

    def __init__(self, rate: float | Schedule = 0.5) -> None:
        self.rate = _rate_arg("TargetRateFilter", rate)

    @property
    def thresholds(self) -> str:
        """What this filter ranks and keeps, and in which unit."""
        return (
            f"pixel: top {_describe(self.rate)} fraction of the batch's pixels by max softmax "
            f"probability (per-batch cut-off); images: all"
        )

    def rate_at(self, step: int) -> float:
        """The fraction kept at ``step``."""
        return _fraction_at("TargetRateFilter", self.rate, step, "rate")

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Keep the top fraction of pixels by confidence; the scores are not used.

        Shape:
            logits: (B, C, H, W).
        """
        _check_logits("TargetRateFilter", logits)
        rate = self.rate_at(step)
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
        return f"TargetRateFilter(rate={_describe(self.rate)})"
