"""The DeepLabV2 ResNet-101 backbone exactly as S4GAN's generator uses it (Caffe style).

Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous
Convolution, and Fully Connected CRFs", TPAMI 2018; S4GAN (Mittal et al., "Semi-Supervised
Semantic Segmentation with High- and Low-level Consistency", TPAMI 2019) trains this network
as its generator. It differs from torchvision's / timm's ResNet-101 at ``output_stride=8``:

- the stride-2 of layer2's first bottleneck sits on its 1x1 ``conv1`` (Caffe / MSRA style),
  not on the 3x3 ``conv2``;
- every block of layer3 has dilation 2 and every block of layer4 dilation 4, the first
  blocks included (timm and torchvision give the first block the previous dilation: 1 and 2);
- the max-pool rounds up (``ceil_mode=True``).

Parameter and buffer names are torchvision's / timm's (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0`` ...; no ``fc``), so ImageNet ResNet-101 weights
load by key with nothing missing and nothing unexpected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import timm
from torch import Tensor, nn

from s4seg.models.encoder import check_image_batch, load_weights

__all__ = ["Bottleneck", "DeepLabV2ResNet", "deeplabv2_resnet101"]

# timm's copy of torchvision's original ImageNet ResNet-101 weights: the weights PyTorch
# DeepLabV2 ports start from when they do not use the MS-COCO-pretrained Caffe model.
PRETRAINED_TAG = "resnet101.tv_in1k"


class Bottleneck(nn.Module):
    """ResNet bottleneck with the stride on the 1x1 conv (Caffe style) and a dilated 3x3.

    Args:
        inplanes: input channels.
        planes: width of the 3x3 conv; the block outputs ``4 * planes`` channels.
        stride: stride of ``conv1`` (the 1x1) and of the shortcut.
        dilation: dilation of ``conv2`` (the 3x3); its padding equals the dilation.
        downsample: the projection shortcut, or None for the identity.

    Shape:
        x: (B, inplanes, H, W).
        output: (B, 4 * planes, ceil(H / stride), ceil(W / stride)).
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class DeepLabV2ResNet(nn.Module):
    """Caffe-style dilated ResNet with output stride 8, the DeepLabV2 backbone.

    Batch norm is frozen by default, as in DeepLabV2 and S4GAN: the statistics of
    batches of a few crops are too noisy to learn from, so every BN layer keeps its
    ImageNet running mean / variance (it stays in eval mode even under ``.train()``) and
    its affine parameters get ``requires_grad=False``. The layers stay ``nn.BatchNorm2d``
    so that the state_dict keeps torchvision's keys, ``num_batches_tracked`` included.

    Args:
        layers: blocks per stage; ``(3, 4, 23, 3)`` is ResNet-101.
        freeze_bn: freeze every BN layer as described above. With False they train
            as usual (batch statistics in train mode, learnable affine).

    Shape:
        x: (B, 3, H, W).
        output: (B, 2048, h, w), h = ceil((floor(ceil(H / 2) / 2) + 1) / 2), about
            H / 8 (``reduction``): 41 for DeepLabV2's 321-pixel crops, 5 for 32 pixels.
    """

    def __init__(self, layers: Sequence[int] = (3, 4, 23, 3), *, freeze_bn: bool = True) -> None:
        super().__init__()
        layers = tuple(layers)
        if len(layers) != 4 or any(int(n) != n or n < 1 for n in layers):
            raise ValueError(
                f"layers={layers!r} must be four positive block counts, e.g. (3, 4, 23, 3) "
                "for ResNet-101"
            )
        self.in_channels = 3
        self.out_channels = 512 * Bottleneck.expansion
        self.reduction = 8
        self.freeze_bn = freeze_bn

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self._inplanes = 64
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], dilation=2)
        self.layer4 = self._make_layer(512, layers[3], dilation=4)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # Overwritten by ImageNet weights in practice; He init keeps a randomly
                # initialised 101-layer network's activations from vanishing.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                if freeze_bn:
                    m.weight.requires_grad_(False)
                    m.bias.requires_grad_(False)
        # Without ImageNet weights a frozen BN is the identity, and 33 residual sums of
        # unit-variance branches blow activations up (logits ~1e4, then NaN). Scaling each
        # block's last BN by 1/sqrt(blocks) keeps the sum's variance bounded (the idea of
        # Fixup, Zhang et al. ICLR 2019); ImageNet weights overwrite it.
        blocks = [m for m in self.modules() if isinstance(m, Bottleneck)]
        for block in blocks:
            nn.init.constant_(block.bn3.weight, len(blocks) ** -0.5)
        self.train()

    def _make_layer(
        self, planes: int, blocks: int, stride: int = 1, dilation: int = 1
    ) -> nn.Sequential:
        out_planes = planes * Bottleneck.expansion
        # Every stage's first block projects: the channel count always changes here.
        downsample = nn.Sequential(
            nn.Conv2d(self._inplanes, out_planes, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_planes),
        )
        block_list = [Bottleneck(self._inplanes, planes, stride, dilation, downsample)]
        self._inplanes = out_planes
        block_list += [Bottleneck(out_planes, planes, dilation=dilation) for _ in range(blocks - 1)]
        return nn.Sequential(*block_list)

    def train(self, mode: bool = True) -> DeepLabV2ResNet:
        """Set train/eval mode; with ``freeze_bn`` the BN layers stay in eval mode."""
        super().train(mode)
        if self.freeze_bn:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Return the layer4 feature map (stride 8)."""
        check_image_batch(x, self.in_channels, "DeepLabV2ResNet")
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def deeplabv2_resnet101(
    pretrained: bool = False,
    *,
    freeze_bn: bool = True,
    checkpoint_path: str | os.PathLike[str] | None = None,
) -> DeepLabV2ResNet:
    """Build the DeepLabV2 ResNet-101 backbone (the ``deeplabv2_resnet101`` preset).

    Args:
        pretrained: load torchvision's ImageNet ResNet-101 weights through timm
            (``resnet101.tv_in1k``; needs the network or timm's cache). Any other
            ResNet-101 weights load the same way:
            ``backbone.load_state_dict({k: v for k, v in sd.items() if not k.startswith("fc.")})``.
        freeze_bn: freeze batch norm as DeepLabV2 does (see :class:`DeepLabV2ResNet`).
        checkpoint_path: a file holding this backbone's own state_dict, loaded last (see
            :func:`s4seg.models.encoder.load_weights`).
    """
    backbone = DeepLabV2ResNet((3, 4, 23, 3), freeze_bn=freeze_bn)
    if pretrained:
        imagenet = timm.create_model(PRETRAINED_TAG, pretrained=True)
        state = {k: v for k, v in imagenet.state_dict().items() if not k.startswith("fc.")}
        backbone.load_state_dict(state, strict=True)
    if checkpoint_path is not None:
        load_weights(backbone, checkpoint_path)
    return backbone
