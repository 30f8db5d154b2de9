"""Distribution alignment: pseudo-labels whose class mix matches the labelled data's.

Berthelot et al., "ReMixMatch", ICLR 2020 (as USB's ``DistAlignEMAHook``), applied to
every pixel: the class probabilities that make the pseudo-labels are multiplied by
``target / model`` and renormalized, where ``target`` is the class distribution of
the labelled pixels and ``model`` the running mean of the predicted distribution on
unlabelled pixels. A model that under-segments a rare class (here: objects on a 90 %
background) sees that class's probabilities raised until its pseudo-labels predict it
as often as the labels show it; without this, confident pseudo-labels of such a model
are biased towards the frequent class and self-training amplifies the bias.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from s4seg.checks import check_real
from s4seg.distributed import all_reduce_sum, world_size

__all__ = ["DistributionAlignment"]


class DistributionAlignment:
    """Align the predicted class distribution of pseudo-labels with the labelled one.

    Both distributions are exponential moving averages over batches (momentum
    ``momentum``), started at the first batch; they are state (checkpointed), and under
    torchrun they average over all ranks, so every rank aligns alike.

    Args:
        momentum: weight of the old value in both moving averages, in [0, 1).
        target: a fixed class distribution instead of the labelled pixels' (C,).
    """

    def __init__(self, momentum: float = 0.999, target: Tensor | None = None) -> None:
        self.momentum = check_real(
            momentum, "momentum", low=0.0, high=1.0, high_open=True, owner="DistributionAlignment"
        )
        if target is not None:
            target = torch.as_tensor(target, dtype=torch.float32)
            if target.dim() != 1 or bool((target < 0).any()) or float(target.sum()) <= 0:
                raise ValueError(
                    f"target must be a (C,) distribution of non-negative values, got {target!r}"
                )
            target = target / target.sum()
        self.fixed_target = target is not None
        self.target: Tensor | None = target
        self.model: Tensor | None = None

    def _update(self, old: Tensor | None, new: Tensor) -> Tensor:
        return new if old is None else old.to(new.device).lerp(new, 1.0 - self.momentum)

    @torch.no_grad()
    def observe_labels(self, mask: Tensor, num_classes: int, ignore_index: int) -> None:
        """Move the target towards the class mix of a labelled batch (no host sync)."""
        if self.fixed_target:
            return
        flat = mask.reshape(-1).long()
        valid = flat != ignore_index
        counts = torch.zeros(num_classes, device=mask.device).scatter_add_(
            0, flat.clamp(0, num_classes - 1), valid.float()
        )
        counts = all_reduce_sum(counts)
        self.target = self._update(self.target, counts / counts.sum().clamp_min(1.0))

    @torch.no_grad()
    def __call__(self, logits: Tensor) -> Tensor:
        """Aligned logits (log-probabilities) of a batch; updates the model's average.

        Shape:
            logits: (B, C, H, W). output: the same.
        """
        probs = logits.detach().float().softmax(dim=1)
        mean = all_reduce_sum(probs.mean(dim=(0, 2, 3))) / world_size()
        self.model = self._update(self.model, mean)
        if self.target is None:  # no labelled batch seen yet: nothing to align to
            return logits.detach().float()
        ratio = (self.target.to(probs.device) / self.model.clamp_min(1e-6)).view(1, -1, 1, 1)
        aligned = probs * ratio
        return (aligned / aligned.sum(dim=1, keepdim=True)).clamp_min(1e-12).log()

    def state_dict(self) -> dict[str, Any]:
        """The two running distributions (None before the first batch)."""
        return {"target": self.target, "model": self.model}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.target, self.model = state["target"], state["model"]

    def __repr__(self) -> str:
        fixed = ", target=fixed" if self.fixed_target else ""
        return f"DistributionAlignment(momentum={self.momentum}{fixed})"
