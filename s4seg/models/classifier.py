"""An image-level multi-label classifier, and class presence as a filter of segmentations.

The MLMT branch of S4GAN (Mittal et al., TPAMI 2019) predicts which classes an image
contains; at test time the classes it rules out are removed from the segmentation.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import Tensor, nn

from s4seg.models.encoder import check_image_batch

__all__ = ["MultiLabelClassifier", "mask_absent_classes", "presence_targets"]


class MultiLabelClassifier(nn.Module):
    """Any timm classification model with ``num_classes`` outputs, one logit per class.

    A class's logit says whether the class occurs anywhere in the image (a sigmoid per
    class, not a softmax over classes). The original S4GAN code uses an ImageNet
    ResNet-101; any timm name works here (``pretrained`` passes through to timm).

    Args:
        name: a timm model name (``"resnet101"``, ``"test_resnet"`` for tests).
        num_classes: C, the segmentation's classes.
        pretrained: passed to timm.
        **kwargs: passed to ``timm.create_model``.

    Shape:
        x: (B, 3, H, W). output: (B, C) logits.
    """

    def __init__(
        self, name: str, num_classes: int, pretrained: bool = False, **kwargs: Any
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.model = timm.create_model(
            name, pretrained=pretrained, num_classes=num_classes, **kwargs
        )
        self.name, self.num_classes = name, num_classes

    def forward(self, x: Tensor) -> Tensor:
        """Class-presence logits."""
        check_image_batch(x, 3, f"MultiLabelClassifier({self.name!r})")
        return self.model(x)


def presence_targets(mask: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """1 for every class that occurs in an image's mask (ignore pixels left out), else 0.

    Shape:
        mask: (B, H, W) int. output: (B, C) float.
    """
    if mask.dim() != 3:
        raise ValueError(f"mask must be (B, H, W), got shape {tuple(mask.shape)}")
    b = mask.shape[0]
    flat = mask.reshape(b, -1).long()
    valid = flat != ignore_index
    present = torch.zeros(b, num_classes + 1, device=mask.device)
    # Ignore pixels land in the extra column, which is dropped.
    idx = torch.where(valid, flat.clamp(0, num_classes - 1), num_classes)
    present.scatter_(1, idx, 1.0)
    return present[:, :num_classes]


def mask_absent_classes(
    logits: Tensor, presence: Tensor, always_present: tuple[int, ...] = (0,)
) -> Tensor:
    """Segmentation logits with the classes that ``presence`` rules out removed.

    An absent class's logits become the dtype's lowest value, so the argmax never picks
    it. The original code multiplied each class's logits by its 0/1 presence instead,
    which turns an absent class's negative logits into 0 and can make it win; this
    removes it. ``always_present`` (background) is never removed.

    Shape:
        logits: (B, C, H, W). presence: (B, C) bool.
    """
    if presence.shape != logits.shape[:2]:
        raise ValueError(
            f"presence must be (B, C) = {tuple(logits.shape[:2])}, got {tuple(presence.shape)}"
        )
    keep = presence.bool().clone()
    for c in always_present:
        keep[:, c] = True
    low = torch.finfo(logits.dtype).min
    return torch.where(keep[:, :, None, None], logits, torch.full_like(logits, low))
