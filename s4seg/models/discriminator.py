"""S4GAN's feature-matching discriminator.

Mittal, Tatarchenko and Brox, "Semi-Supervised Semantic Segmentation with High- and
Low-level Consistency", TPAMI 2019. The discriminator sees a class map (the generator's
softmax, or the one-hot ground truth) stacked on the image, and returns a real/fake score
and the pooled features that the generator's feature-matching loss compares; the maps
and images it is shown are made in :mod:`s4seg.models.discriminator_inputs`.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["FMDiscriminator"]

# conv1..conv4 halve the size each: a side below 16 leaves conv4 with an empty map.
_MIN_SIZE = 16


class FMDiscriminator(nn.Module):
    """The S4GAN discriminator: four strided convs, global average pool, one linear score.

    Layers as in the original code: ``conv1``..``conv4`` (kernel 4, stride 2, padding 1;
    ``ndf``, 2, 4 and 8 times ``ndf`` channels) each followed by LeakyReLU(0.2), with
    Dropout2d(0.5) after the first three, then global average pooling and ``fc``. The
    names are the original's, so its weights load unchanged (``load_state_dict``).

    Two deliberate differences: the pooling is adaptive (the original's fixed
    ``AvgPool2d((20, 20))`` read only a corner of the map on larger crops and failed on
    smaller ones), and the score is returned as a logit (apply ``torch.sigmoid`` for the
    original's probability; BCE-with-logits is the stable way to train on it).

    Args:
        num_classes: class channels of the input.
        image_channels: image channels of the input (3 for RGB).
        ndf: width of ``conv1``; the features have ``8 * ndf`` dimensions.

    Shape:
        x: (B, num_classes + image_channels, H, W) with H, W >= 16, as made by
            :func:`discriminator_input`.
        output: ``(logit, features)``: (B,) real/fake logits and (B, 8 * ndf) features.
    """

    def __init__(self, num_classes: int, image_channels: int = 3, ndf: int = 64) -> None:
        super().__init__()
        if num_classes < 1 or image_channels < 0 or ndf < 1:
            raise ValueError(
                f"FMDiscriminator needs num_classes >= 1, image_channels >= 0, ndf >= 1; got "
                f"num_classes={num_classes}, image_channels={image_channels}, ndf={ndf}"
            )
        self.num_classes = num_classes
        self.image_channels = image_channels
        self.in_channels = num_classes + image_channels
        self.feature_dim = 8 * ndf
        self.conv1 = nn.Conv2d(self.in_channels, ndf, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(ndf, ndf * 2, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(ndf * 2, ndf * 4, 4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(ndf * 4, ndf * 8, 4, stride=2, padding=1)
        self.leaky_relu = nn.LeakyReLU(0.2, inplace=True)
        self.drop = nn.Dropout2d(0.5)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ndf * 8, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Score and pooled conv4 features."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"FMDiscriminator(num_classes={self.num_classes}) expects "
                f"(B, {self.num_classes}+{self.image_channels}={self.in_channels}, H, W) input "
                f"(class maps stacked on the image), got shape {tuple(x.shape)}; build it "
                "with discriminator_input(probs, images)"
            )
        if min(x.shape[-2:]) < _MIN_SIZE:
            raise ValueError(
                f"FMDiscriminator needs crops of at least {_MIN_SIZE}x{_MIN_SIZE} (four "
                f"stride-2 convs), got {tuple(x.shape[-2:])}; use larger crops"
            )
        x = self.drop(self.leaky_relu(self.conv1(x)))
        x = self.drop(self.leaky_relu(self.conv2(x)))
        x = self.drop(self.leaky_relu(self.conv3(x)))
        x = self.leaky_relu(self.conv4(x))
        features = self.pool(x).flatten(1)
        return self.fc(features).squeeze(1), features
