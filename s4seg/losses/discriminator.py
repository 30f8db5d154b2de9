"""Binary cross-entropy of the discriminator, on logits."""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DiscriminatorLoss"]


class DiscriminatorLoss(nn.Module):
    """``(BCE(real, 1 - s) + BCE(fake, 0)) / 2``, computed on logits.

    The discriminator's loss of S4GAN (Mittal, Tatarchenko and Brox, "Semi-Supervised
    Semantic Segmentation with High- and Low-level Consistency", TPAMI 2019): real
    inputs are ground-truth one-hot maps, fake inputs are predicted probability maps,
    and the two halves are averaged as in the original code. ``label_smoothing`` is
    one-sided (Salimans et al., "Improved Techniques for Training GANs", 2016): only
    the real target moves, to ``1 - s``; the fake target stays 0. It slows a
    discriminator that wins too easily, the failure behind Loss_D falling to ~0.08
    while the self-training gate starved.

    Args:
        label_smoothing: ``s`` in [0, 1).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
            raise TypeError(f"label_smoothing must be a float in [0, 1), got {label_smoothing!r}")
        s = float(label_smoothing)
        if not 0.0 <= s < 1.0:  # also rejects NaN
            raise ValueError(
                f"label_smoothing must be in [0, 1) (the real target is 1 - label_smoothing), "
                f"got {s}; 0.1 is a common choice"
            )
        self.label_smoothing: float = s

    def forward(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The loss as a 0-d tensor; each half is a mean over its batch.

        Shape:
            real_logits: (B,). fake_logits: (B',); the batch sizes may differ.
        """
        for name, x in (("real_logits", real_logits), ("fake_logits", fake_logits)):
            if x.numel() == 0 or not x.is_floating_point():
                raise ValueError(
                    f"{name} must be a non-empty float tensor of discriminator logits (before "
                    f"the sigmoid), got shape {tuple(x.shape)} and dtype {x.dtype}"
                )
        real_target = torch.full_like(real_logits, 1.0 - self.label_smoothing)
        bce_real = F.binary_cross_entropy_with_logits(real_logits, real_target)
        bce_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return (bce_real + bce_fake) / 2

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"
