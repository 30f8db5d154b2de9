"""Self-adaptive pixel threshold (FreeMatch): follows the model's own confidence."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from s4seg.distributed import all_reduce_sum, world_size
from s4seg.filters.base import (
    FilterDecision,
    _check_logits,
    _momentum_arg,
    _num_classes_arg,
    _restore_state,
)

__all__ = ["SelfAdaptiveThreshold"]


class SelfAdaptiveThreshold:
    """FreeMatch's self-adaptive threshold on each pixel's max softmax probability.

    From Wang et al., "FreeMatch: Self-adaptive Thresholding for Semi-supervised
    Learning", ICLR 2023. The global threshold is an exponential moving average of
    the batch's mean confidence, ``tau <- m * tau + (1 - m) * mean(max_c p)``,
    starting at ``1 / C``: low while the model is unsure, rising as it learns. With
    ``classwise=True`` (FreeMatch's "local" thresholds) it is scaled per class by
    the moving average of the mean probability of that class, normalised by its
    maximum: ``tau_c = tau * p_c / max_c p_c``, so that rare classes get a lower bar.
    Means are over every pixel of the batch (FreeMatch averages over images). The
    state is updated on every call of :meth:`decide` (once per training step, before
    the threshold is used, as in FreeMatch) and saved by :meth:`state_dict`.

    Every image is allowed; combine with an image gate through
    :class:`s4seg.filters.AndFilter`.

    Note: a (C,) threshold is told apart from a per-image one by its length, so with
    ``classwise=True`` the batch size must differ from ``num_classes``.

    Args:
        num_classes: number of classes C of the logits.
        momentum: EMA momentum ``m`` in [0, 1) (FreeMatch: 0.999).
        classwise: per-class thresholds (C,) instead of one global threshold.
    """

    def __init__(
        self, num_classes: int, *, momentum: float = 0.999, classwise: bool = True
    ) -> None:
        self.num_classes = _num_classes_arg("SelfAdaptiveThreshold", num_classes)
        self.momentum = _momentum_arg("SelfAdaptiveThreshold", momentum)
        self.classwise = bool(classwise)
        c = self.num_classes
        self.global_threshold = torch.full((), 1.0 / c, dtype=torch.float32)
        self.class_probs = torch.full((c,), 1.0 / c, dtype=torch.float32)

    @property
    def thresholds(self) -> str:
        """What this filter thresholds and in which unit."""
        scope = "per predicted class, tau * p_c / max p_c" if self.classwise else "global tau"
        return (
            f"pixel: max softmax probability per pixel >= self-adaptive threshold ({scope}; tau = "
            f"EMA of mean confidence, momentum {self.momentum}); images: all"
        )

    def threshold(self) -> Tensor:
        """The current threshold: (C,) with ``classwise``, else 0-d (a copy)."""
        if not self.classwise:
            return self.global_threshold.clone()
        norm = self.class_probs / self.class_probs.max().clamp_min(torch.finfo(torch.float32).tiny)
        # Both factors lie in [0, 1]; the clamp only guards the last ulp.
        return (self.global_threshold * norm).clamp_(0.0, 1.0)

    @torch.no_grad()
    def update(self, logits: Tensor) -> None:
        """Move the moving averages towards this batch's confidences (no host sync).

        Shape:
            logits: (B, C, H, W).
        """
        _check_logits("SelfAdaptiveThreshold", logits, self.num_classes)
        probs = logits.detach().float().softmax(dim=1)
        self._to(probs.device)
        w = 1.0 - self.momentum
        # Means over all ranks' batches, so every rank applies the same thresholds.
        world = world_size()
        batch_conf = all_reduce_sum(probs.amax(dim=1).mean()) / world
        batch_class = all_reduce_sum(probs.mean(dim=(0, 2, 3))) / world
        self.global_threshold.lerp_(batch_conf, w).clamp_(0.0, 1.0)
        self.class_probs.lerp_(batch_class, w).clamp_(0.0, 1.0)

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Update the averages with this batch, then threshold its pixels.

        ``step``, ``image_scores`` and ``pixel_scores`` are not used.

        Shape:
            logits: (B, C, H, W).
        """
        self.update(logits)
        return FilterDecision(
            image_keep=torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device),
            pixel_threshold=self.threshold(),
        )

    def state_dict(self) -> dict[str, Tensor]:
        """The moving averages (tensors only), for checkpoints."""
        return {
            "global_threshold": self.global_threshold.clone(),
            "class_probs": self.class_probs.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (checked against ``num_classes``)."""
        restored = _restore_state("SelfAdaptiveThreshold", state, self.state_dict())
        self.global_threshold = restored["global_threshold"]
        self.class_probs = restored["class_probs"]

    def _to(self, device: torch.device) -> None:
        if self.global_threshold.device != device:
            self.global_threshold = self.global_threshold.to(device)
            self.class_probs = self.class_probs.to(device)

    def __repr__(self) -> str:
        return (
            f"SelfAdaptiveThreshold(num_classes={self.num_classes}, momentum={self.momentum}, "
            f"classwise={self.classwise})"
        )
