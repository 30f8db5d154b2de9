"""Supervised cross-entropy on the labelled batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SupervisedCrossEntropy"]


class SupervisedCrossEntropy(nn.Module):
    """Pixel-wise cross-entropy averaged over the non-ignored pixels.

    The supervised term L_ce of S4GAN (Mittal, Tatarchenko and Brox, "Semi-Supervised
    Semantic Segmentation with High- and Low-level Consistency", TPAMI 2019). Equals
    ``F.cross_entropy(logits, labels, ignore_index=ignore_index)`` except when every
    pixel is ignored: then the loss is 0 with a zero gradient instead of NaN, so one
    fully-ignored crop cannot poison the weights.

    Args:
        ignore_index: label value that contributes nothing.
        check_labels: raise a ValueError on a label outside [0, C) that is not
            ``ignore_index``. Costs one host sync per call (a single ``.any()``);
            without it CUDA fails with an opaque device-side assert instead.
    """

    def __init__(self, ignore_index: int = 255, *, check_labels: bool = True) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.check_labels = check_labels

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy over the pixels whose label is not ``ignore_index``.

        Shape:
            logits: (B, C, H, W) float. labels: (B, H, W) int. Returns a 0-d tensor.
        """
        if logits.dim() < 2 or not logits.is_floating_point():
            raise ValueError(
                f"logits must be a float (B, C, H, W) tensor, got shape {tuple(logits.shape)} "
                f"and dtype {logits.dtype}"
            )
        expected = (logits.shape[0], *logits.shape[2:])
        if tuple(labels.shape) != expected:
            fix = ""
            if labels.dim() == logits.dim() - 1 and labels.shape[0] == logits.shape[0]:
                size = tuple(labels.shape[1:])
                fix = (
                    f"; upsample the logits to the label size with F.interpolate(logits, "
                    f"size={size}, mode='bilinear', align_corners=False)"
                )
            elif labels.dim() == logits.dim() and labels.shape[1] == 1:
                fix = "; drop the channel dimension of the labels with labels.squeeze(1)"
            raise ValueError(
                f"labels shape {tuple(labels.shape)} does not match logits shape "
                f"{tuple(logits.shape)}: expected labels of shape {expected}{fix}"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError(
                f"labels must hold integer class indices, got {labels.dtype}; use labels.long()"
            )
        c = logits.shape[1]
        labels = labels.long()
        valid = labels != self.ignore_index
        if self.check_labels:
            bad = valid & ((labels < 0) | (labels >= c))
            if bool(bad.any()):  # the one host sync of this call
                values = torch.unique(labels[bad]).tolist()
                shown = ", ".join(str(v) for v in values[:10]) + (
                    ", ..." if len(values) > 10 else ""
                )
                raise ValueError(
                    f"labels contain value(s) {shown} outside [0, {c}) that are not the ignore "
                    f"index {self.ignore_index}; remap them to a class in [0, {c}) or to "
                    f"{self.ignore_index}, or build the model with more classes"
                )
        total = F.cross_entropy(logits, labels, ignore_index=self.ignore_index, reduction="sum")
        return total / valid.sum().clamp_min(1).to(total.dtype)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
