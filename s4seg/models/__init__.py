"""Networks: the segmentation generator (a timm backbone or a preset, with a DeepLabV2 or
DeepLabV3+ head), S4GAN's feature-matching discriminator, AdvSemiSeg's pixel-level
discriminator, what the discriminators are shown, and inference on images of any size."""

from __future__ import annotations

from s4seg.models.classifier import MultiLabelClassifier, mask_absent_classes, presence_targets
from s4seg.models.deeplabv2 import DeepLabV2ResNet, deeplabv2_resnet101
from s4seg.models.discriminator import FMDiscriminator
from s4seg.models.discriminator_inputs import (
    discriminator_input,
    one_hot_labels,
    scale_images,
    sharpen,
    soften_one_hot,
)
from s4seg.models.encoder import TimmEncoder, load_weights
from s4seg.models.generator import HEADS, PRESETS, SegmentationGenerator, create_generator
from s4seg.models.heads import ASPP, DeepLabV3PlusHead, PooledASPP
from s4seg.models.inference import predict_logits, tiled_logits
from s4seg.models.original_checkpoint import load_original_checkpoint
from s4seg.models.pixel_discriminator import PixelDiscriminator

__all__ = [
    "ASPP",
    "HEADS",
    "PRESETS",
    "DeepLabV2ResNet",
    "DeepLabV3PlusHead",
    "FMDiscriminator",
    "MultiLabelClassifier",
    "PixelDiscriminator",
    "PooledASPP",
    "SegmentationGenerator",
    "TimmEncoder",
    "create_generator",
    "deeplabv2_resnet101",
    "discriminator_input",
    "load_original_checkpoint",
    "load_weights",
    "mask_absent_classes",
    "one_hot_labels",
    "predict_logits",
    "presence_targets",
    "scale_images",
    "sharpen",
    "soften_one_hot",
    "tiled_logits",
]
