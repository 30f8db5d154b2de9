"""Class-wise pixel thresholds (FlexMatch): a lower bar for the classes still being learnt."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from s4seg.distributed import all_reduce_sum, world_size
from s4seg.filters.base import (
    FilterDecision,
    _check_logits,
    _describe,
    _momentum_arg,
    _num_classes_arg,
    _restore_state,
    _threshold_arg,
    _threshold_at,
)
from s4seg.schedules import Schedule

__all__ = ["ClasswiseThreshold"]


class ClasswiseThreshold:
    """FlexMatch's curriculum pseudo-labelling: one confidence threshold per class.

    From Zhang et al., "FlexMatch: Boosting Semi-Supervised Learning with Curriculum
    Pseudo Labeling", NeurIPS 2021. Each class's "learning effect" ``sigma_c`` is the
    share of unlabelled pixels predicted as ``c`` with confidence above the fixed
    threshold ``tau``; normalised, ``beta_c = sigma_c / max(max_k sigma_k, unused)``
    (``unused`` is the share below ``tau``; FlexMatch calls counting it "threshold
    warm-up", here ``count_unused``), mapped by
    ``M(x) = x / (2 - x)`` (convex) or ``M(x) = x`` (linear), it gives the class's
    threshold ``T_c = M(beta_c) * tau``. Classes the model predicts confidently often
    keep a bar near ``tau``; rare or hard classes get a lower one.

    Segmentation adaptation: FlexMatch keeps the latest prediction of every
    unlabelled sample; here that would be one entry per pixel of the data set, so
    ``sigma`` and ``unused`` are exponential moving averages of per-batch pixel
    shares instead. They start at "nothing learnt yet" (``sigma = 0``,
    ``unused = 1``), so, as in FlexMatch with ``count_unused``, the thresholds start near 0
    and rise as the model becomes confident. The state is updated on every call of
    :meth:`decide` (once per training step), after the batch is masked with the
    thresholds from before it, and saved by :meth:`state_dict`. A pixel counts as learnt
    when its confidence is ``>= tau``, as in the reference code.

    Every image is allowed; combine with an image gate through
    :class:`s4seg.filters.AndFilter`.

    Note: a (C,) threshold is told apart from a per-image one by its length, so the
    batch size must differ from ``num_classes``.

    Args:
        num_classes: number of classes C of the logits.
        threshold: the fixed threshold ``tau`` in [0, 1], or a schedule of it.
        momentum: EMA momentum of the per-class shares, in [0, 1).
        mapping: ``"convex"`` (``x / (2 - x)``, FlexMatch's default) or ``"linear"``.
        count_unused: include the unused share in the normalisation (FlexMatch's
            "threshold warm-up"); without it the best-learnt class always gets ``tau``.
    """

    def __init__(
        self,
        num_classes: int,
        threshold: float | Schedule = 0.95,
        *,
        momentum: float = 0.99,
        mapping: Literal["convex", "linear"] = "convex",
        count_unused: bool = True,
    ) -> None:
        self.num_classes = _num_classes_arg("ClasswiseThreshold", num_classes)
        self.threshold = _threshold_arg("ClasswiseThreshold", threshold)
        self.momentum = _momentum_arg("ClasswiseThreshold", momentum)
        if mapping not in ("convex", "linear"):
            raise ValueError(f"mapping must be 'convex' or 'linear', got {mapping!r}")
        self.mapping = mapping
        self.count_unused = bool(count_unused)
        self.learned = torch.zeros(self.num_classes, dtype=torch.float32)
        self.unused = torch.ones((), dtype=torch.float32)

    @property
    def thresholds(self) -> str:
        """What this filter thresholds and in which unit."""
        return (
            f"pixel: max softmax probability per pixel >= per-class threshold M(beta_c) * "
            f"{_describe(self.threshold)} of its predicted class (FlexMatch, {self.mapping} "
            f"mapping); images: all"
        )

    def class_thresholds(self, tau: float) -> Tensor:
        """The (C,) thresholds for the fixed threshold ``tau`` (a copy, in [0, tau])."""
        top = self.learned.max()
        if self.count_unused:
            top = torch.maximum(top, self.unused)
        beta = (self.learned / top.clamp_min(torch.finfo(torch.float32).tiny)).clamp_(0.0, 1.0)
        mapped = beta / (2.0 - beta) if self.mapping == "convex" else beta
        return (mapped * tau).clamp_(0.0, 1.0)

    @torch.no_grad()
    def update(self, logits: Tensor, tau: float) -> None:
        """Move the per-class shares towards this batch's (no host sync).

        Shape:
            logits: (B, C, H, W).
        """
        _check_logits("ClasswiseThreshold", logits, self.num_classes)
        probs = logits.detach().float().softmax(dim=1)
        confidence, pseudo = probs.max(dim=1)
        # USB and TorchSSL count p >= tau as learnt (their select = max_probs.ge(p_cutoff)).
        confident = (confidence >= tau).float().reshape(-1)
        n = confident.numel()
        self._to(probs.device)
        # scatter_add_ rather than bincount or boolean indexing: no host sync on CUDA.
        per_class = torch.zeros_like(self.learned).scatter_add_(0, pseudo.reshape(-1), confident)
        # Counts over all ranks' pixels, so every rank applies the same thresholds.
        per_class, n_conf = all_reduce_sum(per_class), all_reduce_sum(confident.sum())
        n *= world_size()
        w = 1.0 - self.momentum
        self.learned.lerp_(per_class / n, w).clamp_(0.0, 1.0)
        self.unused.lerp_(1.0 - n_conf / n, w).clamp_(0.0, 1.0)

    def decide(
        self,
        *,
        logits: Tensor,
        step: int,
        image_scores: Tensor | None = None,
        pixel_scores: Tensor | None = None,
    ) -> FilterDecision:
        """Threshold each pixel by its class, then update the shares with this batch.

        As in FlexMatch's code (USB, TorchSSL), a batch is masked with the thresholds
        learnt before it, and only then counted. ``image_scores`` and
        ``pixel_scores`` are not used.

        Shape:
            logits: (B, C, H, W).
        """
        tau = _threshold_at("ClasswiseThreshold", self.threshold, step)
        _check_logits("ClasswiseThreshold", logits, self.num_classes)
        self._to(logits.device)
        thresholds = self.class_thresholds(tau)
        self.update(logits, tau)
        return FilterDecision(
            image_keep=torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device),
            pixel_threshold=thresholds,
        )

    def state_dict(self) -> dict[str, Tensor]:
        """The moving averages (tensors only), for checkpoints."""
        return {"learned": self.learned.clone(), "unused": self.unused.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (checked against ``num_classes``)."""
        restored = _restore_state("ClasswiseThreshold", state, self.state_dict())
        self.learned, self.unused = restored["learned"], restored["unused"]

    def _to(self, device: torch.device) -> None:
        if self.learned.device != device:
            self.learned = self.learned.to(device)
            self.unused = self.unused.to(device)

    def __repr__(self) -> str:
        return (
            f"ClasswiseThreshold(num_classes={self.num_classes}, "
            f"threshold={_describe(self.threshold)}, momentum={self.momentum}, "
            f"mapping={self.mapping!r}, count_unused={self.count_unused})"
        )
