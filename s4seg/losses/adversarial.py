"""Per-pixel adversarial BCE for a fully-convolutional discriminator (AdvSemiSeg)."""

from __future__ import annotations

import numbers
import operator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PixelAdversarialLoss", "masked_bce_with_logits"]


def masked_bce_with_logits(logits: Tensor, target: float, valid: Tensor | None = None) -> Tensor:
    """BCE-with-logits against a constant target, averaged over the valid pixels.

    Args:
        logits: discriminator logits (before the sigmoid).
        target: the label of every pixel, in [0, 1]: 1.0 for "real", 0.0 for "fake".
        valid: pixels that count; None counts every pixel.

    Returns:
        A 0-d loss in the logits' dtype; 0 with a zero gradient when no pixel is valid
        (never NaN).

    Shape:
        logits: any, e.g. (B, H, W). valid: same as ``logits``, bool.
    """
    if isinstance(target, bool) or not isinstance(target, numbers.Real):
        raise TypeError(f"target must be a float in [0, 1] (1.0 real, 0.0 fake), got {target!r}")
    t = float(target)
    if not 0.0 <= t <= 1.0:  # also rejects NaN
        raise ValueError(f"target must be in [0, 1] (1.0 real, 0.0 fake), got {t}")
    if not logits.is_floating_point():
        raise TypeError(
            f"logits must be a float tensor of discriminator logits, got {logits.dtype}"
        )
    per_pixel = F.binary_cross_entropy_with_logits(
        logits, torch.full_like(logits, t), reduction="none"
    )
    if valid is None:
        # numel is known on the host: no sync, and an empty batch gives 0 / 1 = 0.
        return per_pixel.sum() / max(per_pixel.numel(), 1)
    if valid.dtype != torch.bool or valid.shape != logits.shape:
        raise ValueError(
            f"valid must be a bool tensor of the logits' shape {tuple(logits.shape)}, got "
            f"shape {tuple(valid.shape)} and dtype {valid.dtype}; for a label map use "
            f"PixelAdversarialLoss(ignore_index=...)"
        )
    # where, not a multiply by the mask: an infinite loss at an ignored pixel (a logit of
    # +-inf) would give inf * 0 = NaN.
    total = torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum()
    return total / valid.sum().clamp_min(1).to(total.dtype)


class PixelAdversarialLoss(nn.Module):
    """BCE of a per-pixel discriminator against "real" (1) or "fake" (0), ignoring unlabelled pixels.

    The adversarial terms of AdvSemiSeg (Hung et al., "Adversarial Learning for
    Semi-Supervised Semantic Segmentation", BMVC 2018), on the logits of
    :class:`s4seg.models.pixel_discriminator.PixelDiscriminator`:

    * generator: ``adv(D(softmax(pred)), 1.0, labels)`` (fool the discriminator; on an
      unlabelled batch pass ``mask=None``);
    * discriminator: ``adv(D(softmax(pred).detach()), 0.0, labels) +
      adv(D(one_hot_labels(labels, C)), 1.0, labels)``.

    Pixels whose label is ``ignore_index`` do not count, as in the original code. The
    mean is over the counted pixels; with none the loss is 0 with a zero gradient.

    Args:
        ignore_index: label value of pixels that do not count.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        if isinstance(ignore_index, bool):
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
        try:  # operator.index accepts ints and numpy ints, refuses floats
            self.ignore_index: int = operator.index(ignore_index)
        except TypeError:
            raise TypeError(f"ignore_index must be an int, got {ignore_index!r}") from None

    def forward(self, logits: Tensor, target: float, mask: Tensor | None = None) -> Tensor:
        """The loss as a 0-d tensor.

        Args:
            logits: the discriminator's per-pixel logits.
            target: 1.0 ("real") or 0.0 ("fake"); any value in [0, 1] is accepted.
            mask: a label map; pixels equal to ``ignore_index`` are excluded. None
                counts every pixel.

        Shape:
            logits: (B, H, W). mask: (B, H, W) int.
        """
        valid = None
        if mask is not None:
            if mask.dtype == torch.bool or mask.is_floating_point() or mask.is_complex():
                raise TypeError(
                    f"mask must be an integer label map (pixels == ignore_index="
                    f"{self.ignore_index} are excluded), got dtype {mask.dtype}; for a bool "
                    f"validity mask use masked_bce_with_logits(logits, target, valid)"
                )
            if mask.shape != logits.shape:
                raise ValueError(
                    f"mask has shape {tuple(mask.shape)} but the logits are "
                    f"{tuple(logits.shape)}; the discriminator's output is upsampled to the "
                    f"input size, so pass the label map of the same crop"
                )
            valid = mask != self.ignore_index
        return masked_bce_with_logits(logits, target, valid)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
