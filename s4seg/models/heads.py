"""Segmentation heads: DeepLabV2's ASPP (S4GAN's generator) and DeepLabV3+ (UniMatch's)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ASPP", "DeepLabV3PlusHead", "PooledASPP"]


def _check_dilations(dilations: Sequence[int]) -> tuple[int, ...]:
    dilations = tuple(dilations)
    if not dilations or any(int(d) != d or d < 1 for d in dilations):
        raise ValueError(
            f"dilations={dilations!r} must be a non-empty sequence of positive integers, "
            "e.g. (6, 12, 18, 24)"
        )
    return dilations


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

    needs_low_level = False

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
        dilations = _check_dilations(dilations)
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


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel: int, dilation: int = 1
) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PooledASPP(nn.Module):
    """DeepLabV3's ASPP: a 1x1 branch, dilated 3x3 branches and image pooling, with BN.

    Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017.
    Every branch is conv, batch norm, ReLU with ``out_channels`` maps; the image-pooling
    branch averages the whole map, projects it and spreads it back over the map; the
    branches are concatenated and projected back to ``out_channels`` by a 1x1 conv with
    BN and ReLU. Unlike :class:`ASPP` (DeepLabV2) it outputs features, not class scores.

    Args:
        in_channels: channels of the backbone feature map.
        out_channels: channels of every branch and of the output.
        dilations: rates of the 3x3 branches (DeepLabV3 at output stride 16: 6, 12, 18).

    Shape:
        x: (B, in_channels, H, W).
        output: (B, out_channels, H, W).
    """

    def __init__(
        self, in_channels: int, out_channels: int, dilations: Sequence[int] = (6, 12, 18)
    ) -> None:
        super().__init__()
        dilations = _check_dilations(dilations)
        self.in_channels, self.out_channels, self.dilations = in_channels, out_channels, dilations
        self.branches = nn.ModuleList(
            [_conv_bn_relu(in_channels, out_channels, 1)]
            + [_conv_bn_relu(in_channels, out_channels, 3, d) for d in dilations]
        )
        self.pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(in_channels, out_channels, 1)
        )
        self.project = _conv_bn_relu((len(dilations) + 2) * out_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Concatenated branches, projected."""
        pooled = F.interpolate(
            self.pooling(x), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.project(torch.cat([*(b(x) for b in self.branches), pooled], dim=1))


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+: pooled ASPP on the deep features, fused with a low-level feature map.

    Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
    Segmentation", ECCV 2018; the layout of UniMatch's and the original S4GAN code's
    ``deeplabv3p`` models. The deep map goes through :class:`PooledASPP`, is upsampled to
    the low-level map's size and concatenated with that map reduced to
    ``low_level_out`` channels (1x1 conv, BN, ReLU); two 3x3 conv-BN-ReLU layers fuse
    them and a 1x1 conv gives the class scores at the low-level map's resolution
    (stride 4 for most backbones), which is where the detail of small objects comes from.

    Args:
        in_channels: channels of the deepest feature map.
        low_level_channels: channels of the low-level feature map.
        num_classes: number of classes (output channels).
        aspp_channels: channels of the ASPP branches; None: ``in_channels // 8`` as in
            UniMatch (256 for ResNet-101's 2048), at least 16.
        low_level_out: channels the low-level map is reduced to (48 in the paper).
        decoder_channels: channels of the two fusing convs (256 in the paper).
        dilations: ASPP rates (6, 12, 18 at output stride 16; double them at 8).

    Shape:
        high: (B, in_channels, h, w). low: (B, low_level_channels, H, W).
        output: (B, num_classes, H, W).
    """

    # The generator passes (deepest map, low-level map) to heads that set this.
    needs_low_level = True

    def __init__(
        self,
        in_channels: int,
        low_level_channels: int,
        num_classes: int,
        *,
        aspp_channels: int | None = None,
        low_level_out: int = 48,
        decoder_channels: int = 256,
        dilations: Sequence[int] = (6, 12, 18),
    ) -> None:
        super().__init__()
        for label, value in (
            ("in_channels", in_channels),
            ("low_level_channels", low_level_channels),
            ("num_classes", num_classes),
            ("low_level_out", low_level_out),
            ("decoder_channels", decoder_channels),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DeepLabV3PlusHead {label} must be a positive int, got {value!r}")
        aspp = max(in_channels // 8, 16) if aspp_channels is None else aspp_channels
        self.in_channels, self.low_level_channels = in_channels, low_level_channels
        self.num_classes = num_classes
        self.aspp = PooledASPP(in_channels, aspp, dilations)
        self.reduce = _conv_bn_relu(low_level_channels, low_level_out, 1)
        self.fuse = nn.Sequential(
            _conv_bn_relu(aspp + low_level_out, decoder_channels, 3),
            _conv_bn_relu(decoder_channels, decoder_channels, 3),
        )
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)

    def forward(self, high: Tensor, low: Tensor) -> Tensor:
        """Class scores at the low-level map's resolution."""
        if high.ndim != 4 or high.shape[1] != self.in_channels:
            raise ValueError(
                f"DeepLabV3PlusHead(in_channels={self.in_channels}) got deep features of shape "
                f"{tuple(high.shape)}; build the head with the encoder's out_channels"
            )
        if low.ndim != 4 or low.shape[1] != self.low_level_channels:
            raise ValueError(
                f"DeepLabV3PlusHead(low_level_channels={self.low_level_channels}) got low-level "
                f"features of shape {tuple(low.shape)}; build it with the channels of the "
                "encoder's stride-4 feature map"
            )
        deep = F.interpolate(
            self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False
        )
        return self.classifier(self.fuse(torch.cat([self.reduce(low), deep], dim=1)))
