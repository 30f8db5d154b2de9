"""Networks: the segmentation generator (timm backbone or DeepLabV2 preset, ASPP head) and
S4GAN's feature-matching discriminator with the helpers that prepare its input, and
AdvSemiSeg's pixel-level discriminator."""

from __future__ import annotations

from s4seg.models.deeplabv2 import DeepLabV2ResNet, deeplabv2_resnet101
from s4seg.models.discriminator import (
    FMDiscriminator,
    discriminator_input,
    one_hot_labels,
    scale_images,
    sharpen,
    soften_one_hot,
)
from s4seg.models.encoder import TimmEncoder
from s4seg.models.generator import SegmentationGenerator, create_generator
from s4seg.models.heads import ASPP
from s4seg.models.pixel_discriminator import PixelDiscriminator

__all__ = [
    "ASPP",
    "DeepLabV2ResNet",
    "FMDiscriminator",
    "PixelDiscriminator",
    "SegmentationGenerator",
    "TimmEncoder",
    "create_generator",
    "deeplabv2_resnet101",
    "discriminator_input",
    "one_hot_labels",
    "scale_images",
    "sharpen",
    "soften_one_hot",
]
