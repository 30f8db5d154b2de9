"""U2PL-style entropy filter: drop the most uncertain pixels of each batch.

Wang et al., "Semi-Supervised Semantic Segmentation Using Unreliable Pseudo-Labels"
(U2PL), CVPR 2022: the pixels whose prediction has the highest entropy are unreliable
and do not become pseudo-labels. The dropped fraction α shrinks over training (from 20%
to 0 in the paper), as the model's predictions become trustworthy.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from s4seg.distributed import all_gather_cat
from s4seg.filters.base import FilterDecision, _check_logits, _describe, _fraction_at
from s4seg.schedules import Constant, Linear, Schedule, as_schedule

__all__ = ["EntropyPercentileFilter", "dropped_count", "pixel_entropy"]


def dropped_count(drop: float, n: int) -> int:
    """How many of ``n`` pixels a fraction drops: ``floor(drop * n)``.

    ``drop * n`` is rounded to 9 decimals first so that float noise
    (``0.7 * 10 == 7.000000000000001``, ``0.29 * 100 == 28.999999999999996``) does not
    move the count.

    Args:
        drop: fraction to drop, in [0, 1].
        n: number of pixels, >= 0.
    """
    if not 0.0 <= drop <= 1.0:  # also rejects NaN
        raise ValueError(f"drop must be in [0, 1] (a fraction of the batch), got {drop}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return min(math.floor(round(drop * n, 9)), n)


@torch.no_grad()
def pixel_entropy(logits: Tensor) -> Tensor:
    """Entropy of each pixel's softmax, in nats, in float32 (float64 stays float64).

    Written with ``log_softmax`` so that a probability that underflows to 0 gives
    ``0 * finite`` rather than ``0 * -inf``; a class whose logit is ``-inf`` (masked
    out) has probability exactly 0 and adds nothing (0 log 0 = 0), where U2PL's
    ``p * log(p + eps)`` also stays finite.

    Shape:
        logits: (B, C, H, W).
        output: (B, H, W).
    """
    x = logits.detach()
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    log_p = x.log_softmax(dim=1)
    terms = log_p.exp() * log_p
    return -torch.where(log_p.isneginf(), torch.zeros_like(terms), terms).sum(dim=1)


class EntropyPercentileFilter:
    """Drop the ``drop`` fraction of the batch's pixels with the highest entropy.

    The entropy of each pixel's softmax (in nats) is ranked over all pixels of the
    unlabelled batch (over all ranks' pixels under torchrun, so that every rank agrees);
    the ``n - floor(drop * n)`` lowest-entropy pixels are kept and every image is
    allowed. The cut-off is the k-th smallest entropy (:func:`torch.kthvalue`) and a
    pixel is kept when its entropy is ``<=`` it, so pixels tied with the cut-off are all
    kept (a few more than ``k`` with ties; exactly ``k`` without).

    U2PL took the cut-off with ``np.percentile`` on the CPU, a host sync every step, and
    dropped pixels ``>=`` that interpolated percentile; here it is computed on the
    device, and it keeps as many pixels as U2PL's rule or one more (U2PL drops the
    highest-entropy pixel even at 0%).

    Decide on the logits whose pseudo-labels are used: a teacher's when there is one
    (U2PL ranks the teacher's entropy).

    Args:
        drop: fraction of pixels to drop, in [0, 1] (0.2 drops 20%; not a percentage),
            or a schedule of it: ``Linear(0.2, 0.0, steps=max_steps)`` is U2PL's decay,
            also built by :meth:`u2pl`.
    """

    def __init__(self, drop: float | Schedule) -> None:
        if isinstance(drop, numbers.Real) and not isinstance(drop, bool):
            d = float(drop)
            if not 0.0 <= d <= 1.0:  # also rejects NaN
                raise ValueError(
                    f"EntropyPercentileFilter drop must be in [0, 1] (the fraction of pixels to "
                    f"drop, not a percentage: 20% is 0.2), got {d}"
                )
        self.drop = as_schedule(drop)

    @classmethod
    def u2pl(cls, steps: int, start: float = 0.2) -> EntropyPercentileFilter:
        """U2PL's schedule: drop ``start`` at step 0, falling linearly to 0 at ``steps``.

        Args:
            steps: length of the decay, usually the run's ``max_steps``.
            start: fraction dropped at step 0 (U2PL: 20%, i.e. 0.2).
        """
        return cls(Linear(start, 0.0, steps=steps))

    @property
    def thresholds(self) -> str:
        """What this filter ranks and drops, and in which unit."""
        if isinstance(self.drop, Constant):
            what = f"the {100 * self.drop.value:.1f}% highest-entropy pixels of the batch"
        else:
            what = f"the highest-entropy fraction {self.drop!r} of the batch's pixels"
        return (
            f"pixel: drops {what} (entropy of the softmax per pixel, in nats; a per-batch "
            f"rank, not a fixed threshold); softmax confidence: not used; images: all"
        )

    def drop_at(self, step: int) -> float:
        """The fraction dropped at ``step``."""
        return _fraction_at("EntropyPercentileFilter", self.drop, step, "drop")

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Keep the lowest-entropy pixels of the batch.

        ``image_scores`` and ``pixel_scores`` are not used.

        Shape:
            logits: (B, C, H, W).
        """
        _check_logits("EntropyPercentileFilter", logits)
        drop = self.drop_at(step)
        ent = pixel_entropy(logits)
        flat = all_gather_cat(ent.reshape(-1))
        n = flat.numel()  # known on the host: no sync
        k = n - dropped_count(drop, n)
        if k == n:
            keep = torch.ones_like(ent, dtype=torch.bool)
        elif k == 0:
            keep = torch.zeros_like(ent, dtype=torch.bool)
        else:
            cutoff = torch.kthvalue(flat, k).values  # 0-d, stays on the device
            keep = ent <= cutoff
        b = logits.shape[0]
        return FilterDecision(
            image_keep=torch.ones(b, dtype=torch.bool, device=logits.device),
            pixel_threshold=torch.zeros((), dtype=torch.float32, device=logits.device),
            pixel_keep=keep,
        )

    def __repr__(self) -> str:
        return f"EntropyPercentileFilter(drop={_describe(self.drop)})"
