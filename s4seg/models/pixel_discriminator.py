"""AdvSemiSeg's fully-convolutional discriminator: a confidence map, one logit per pixel.

Hung, Tsai, Liou, Lin and Yang, "Adversarial Learning for Semi-Supervised Semantic
Segmentation", BMVC 2018. Unlike S4GAN's :class:`s4seg.models.FMDiscriminator`, which
scores a whole image, this discriminator says for every pixel whether the class map
there looks like ground truth. It sees the class map only (the generator's softmax, or
the one-hot ground truth from :func:`s4seg.models.one_hot_labels`), not the image.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PixelDiscriminator"]

# Each conv (kernel 4, stride 2, padding 1) maps a side n to floor(n / 2); after five of
# them a side below 32 leaves an empty map.
_MIN_SIZE = 32


class PixelDiscriminator(nn.Module):
    """Five strided convs to a coarse logit map, upsampled to the input's size.

    Layers as in the AdvSemiSeg code: ``conv1``..``conv4`` (kernel 4, stride 2,
    padding 1; ``ndf``, 2, 4 and 8 times ``ndf`` channels) each followed by
    LeakyReLU(0.2), then ``classifier`` (same kernel, 1 channel). The names are the
    original's, so its weights load unchanged (``load_state_dict``).

    The original returned the coarse map and its training loop upsampled it; here the
    upsampling is part of ``forward`` (bilinear, ``align_corners=False``), so the output
    lines up with the label map pixel for pixel. The output is a logit: apply
    ``torch.sigmoid`` for the confidence map that
    :class:`s4seg.filters.ConfidenceMapFilter` thresholds, and train on the logits with
    :class:`s4seg.losses.adversarial.PixelAdversarialLoss`.

    Args:
        num_classes: class channels of the input.
        ndf: width of ``conv1``.

    Shape:
        x: (B, num_classes, H, W) class maps with H, W >= 32.
        output: (B, H, W) logits.
    """

    def __init__(self, num_classes: int, ndf: int = 64) -> None:
        super().__init__()
        if num_classes < 1 or ndf < 1:
            raise ValueError(
                f"PixelDiscriminator needs num_classes >= 1 and ndf >= 1, got "
                f"num_classes={num_classes}, ndf={ndf}"
            )
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(num_classes, ndf, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, 4, stride=2, padding=1)
        self.classifier = nn.Conv2d(ndf * 8, 1, 4, stride=2, padding=1)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Per-pixel real/fake logits at the input's resolution."""
        if x.ndim != 4 or x.shape[1] != self.num_classes:
            hint = "pass torch.softmax(logits, dim=1) or one_hot_labels(labels, num_classes)"
            if x.ndim == 4 and x.shape[1] == self.num_classes + 3:
                hint = (
                    "the input looks like class maps stacked on an RGB image; this "
                    "discriminator sees the class map only (AdvSemiSeg), drop the image"
                )
            raise ValueError(
                f"PixelDiscriminator(num_classes={self.num_classes}) expects "
                f"(B, {self.num_classes}, H, W) class maps, got shape {tuple(x.shape)}; {hint}"
            )
        h, w = x.shape[-2:]
        if min(h, w) < _MIN_SIZE:
            raise ValueError(
                f"PixelDiscriminator needs inputs of at least {_MIN_SIZE}x{_MIN_SIZE} (five "
                f"stride-2 convs halve each side), got {h}x{w}; use larger crops or upsample "
                f"the logits to the label size before the softmax"
            )
        y = self.leaky_relu(self.conv1(x))
        y = self.leaky_relu(self.conv2(y))
        y = self.leaky_relu(self.conv3(y))
        y = self.leaky_relu(self.conv4(y))
        y = self.classifier(y)
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False).squeeze(1)
