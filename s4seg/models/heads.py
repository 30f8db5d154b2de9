"""The DeepLabV2 classifier head (ASPP), as used by S4GAN's generator."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["ASPP"]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling as in DeepLabV2: parallel dilated 3x3 convs, summed.

    Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets,
    Atrous Convolution, and Fully Connected CRFs", TPAMI 2018 (ASPP-L: rates 6, 12, 18,
    24). Each branch maps the features straight to class scores and the branch outputs
    are summed. One version of the PyTorch port that S4GAN builds on returned from inside
    the summing loop, after the first two branches; this head sums all of them.

    Unlike DeepLabV3's ASPP there is no 1x1 branch, no image pooling and no batch norm.
    The branch list is named ``conv2d_list`` as in the original code, so its weights load
    after renaming the ``layer5.`` prefix to ``head.``.

    Args:
        in_channels: channels of the backbone feature map (2048 for ResNet-101).
        num_classes: number of classes (output channels).
        dilations: one branch per dilation rate; padding equals the rate so every branch
            keeps the spatial size.

    Shape:
        x: (B, in_channels, H, W).
        output: (B, num_classes, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dilations: Sequence[int] = (6, 12, 18, 24),
    ) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ValueError(
                f"ASPP needs in_channels >= 1 and num_classes >= 1, got in_channels="
                f"{in_channels}, num_classes={num_classes}"
            )
        dilations = tuple(dilations)
        if not dilations or any(int(d) != d or d < 1 for d in dilations):
            raise ValueError(
                f"dilations={dilations!r} must be a non-empty sequence of positive integers, "
                "e.g. (6, 12, 18, 24)"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dilations = dilations
        convs = [
            nn.Conv2d(in_channels, num_classes, 3, padding=d, dilation=d, bias=True)
            for d in dilations
        ]
        # The original initialises the weights with N(0, 0.01) and keeps PyTorch's default
        # bias init; small weights start the classifier near uniform class scores.
        for conv in convs:
            nn.init.normal_(conv.weight, mean=0.0, std=0.01)
        self.conv2d_list = nn.ModuleList(convs)

    def forward(self, x: Tensor) -> Tensor:
        """Sum of all branch outputs."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ASPP(in_channels={self.in_channels}) expects (B, {self.in_channels}, H, W) "
                f"features, got shape {tuple(x.shape)}; build the head with the encoder's "
                "out_channels"
            )
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out
