"""The segmentation network S4GAN trains as its generator, and its factory."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterator
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s4seg.models.deeplabv2 import deeplabv2_resnet101
from s4seg.models.encoder import TimmEncoder, check_image_batch, load_weights
from s4seg.models.heads import ASPP, DeepLabV3PlusHead

__all__ = ["HEADS", "PRESETS", "SegmentationGenerator", "create_generator"]


class SegmentationGenerator(nn.Module):
    """Encoder, head, and a bilinear upsampling of the logits to the input size.

    In S4GAN (Mittal et al., TPAMI 2019) this is the generator: a DeepLabV2 network whose
    softmax output the feature-matching discriminator compares with one-hot ground truth.

    Args:
        encoder: maps (B, C_in, H, W) images to (B, C_feat, h, w) features. If it has an
            ``in_channels`` attribute (every s4seg encoder does) inputs are checked against it.
        head: maps the features to (B, num_classes, h, w) logits.
        num_classes: number of classes; checked against ``head.num_classes`` when present.

    Shape:
        x: (B, C_in, H, W).
        output: (B, num_classes, H, W) logits.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, num_classes: int) -> None:
        super().__init__()
        head_classes = getattr(head, "num_classes", num_classes)
        if head_classes != num_classes:
            raise ValueError(
                f"num_classes={num_classes} but the head predicts {head_classes} classes; "
                "build the head with the same num_classes"
            )
        self.encoder = encoder
        self.head = head
        self.num_classes = num_classes
        # Heads that fuse a shallower map (DeepLabV3+) read the encoder's stride-4 stage.
        self.low_level_index = -1
        if getattr(head, "needs_low_level", False):
            if not hasattr(encoder, "forward_features"):
                raise TypeError(
                    f"{type(head).__name__} needs low-level features, but "
                    f"{type(encoder).__name__} has no forward_features(); use a TimmEncoder"
                )
            self.low_level_index = encoder.low_level_index()

    def forward(self, x: Tensor, feature_dropout: float | None = None) -> Any:
        """Logits at the input resolution.

        Args:
            x: the image batch.
            feature_dropout: if given, also decode the same encoder features after
                channel dropout with this probability (UniMatch's feature perturbation,
                ``nn.Dropout2d`` on every map the head reads) and return
                ``(logits, perturbed_logits)``. Both go through the head as one batch, so
                batch norm sees them together, as in UniMatch.
        """
        in_channels = getattr(self.encoder, "in_channels", None)
        if in_channels is not None:
            check_image_batch(x, in_channels, "SegmentationGenerator")
        if getattr(self.head, "needs_low_level", False):
            stages = self.encoder.forward_features(x)
            features = [stages[-1], stages[self.low_level_index]]
        else:
            features = [self.encoder(x)]
        if feature_dropout is None:
            return self._upsample(self.head(*features), x)
        if not 0.0 <= feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {feature_dropout}")
        both = [torch.cat([f, F.dropout2d(f, feature_dropout, training=True)]) for f in features]
        logits, perturbed = self._upsample(self.head(*both), x).chunk(2)
        return logits, perturbed

    @staticmethod
    def _upsample(logits: Tensor, x: Tensor) -> Tensor:
        # align_corners=False, PyTorch's default, treats pixels as areas; the original S4GAN
        # code used True, which shifts the logits by less than one feature-map cell.
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def predict(self, x: Tensor) -> Tensor:
        """Logits in eval mode under ``torch.inference_mode()``; the mode is restored after.

        Shape:
            x: (B, C_in, H, W).
            output: (B, num_classes, H, W), an inference tensor (no autograd history).
        """
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self(x)
        finally:
            self.train(was_training)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the encoder (frozen ones included: filter on ``requires_grad``).

        With :meth:`head_parameters` this partitions ``parameters()``: DeepLabV2 trains the
        head with a 10x larger learning rate than the pretrained backbone.
        """
        return self.encoder.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the head (see :meth:`backbone_parameters`)."""
        return self.head.parameters()


def _deeplabv2_resnet101(
    num_classes: int,
    *,
    pretrained: bool,
    output_stride: int | None,
    **kwargs: Any,
) -> SegmentationGenerator:
    if output_stride not in (None, 8):
        raise ValueError(
            f"deeplabv2_resnet101 has output stride 8 by construction, got output_stride="
            f"{output_stride}; leave output_stride unset, or use a timm backbone such as "
            "'resnet101' for stride 16"
        )
    encoder = deeplabv2_resnet101(pretrained=pretrained, **kwargs)
    return SegmentationGenerator(encoder, ASPP(encoder.out_channels, num_classes), num_classes)


def _deeplabv3plus_resnet101(
    num_classes: int, *, pretrained: bool, output_stride: int | None, **kwargs: Any
) -> SegmentationGenerator:
    # UniMatch's reference network: ResNet-101, stride 16, DeepLabV3+ with rates 6/12/18.
    return _timm_generator(
        "resnet101", num_classes, pretrained, output_stride or 16, "deeplabv3plus", kwargs
    )


# Named architectures that are not plain timm backbones: name -> builder(num_classes,
# *, pretrained, output_stride, **kwargs). A dict, not a registry decorator: there is one.
PRESETS: dict[str, Callable[..., SegmentationGenerator]] = {
    "deeplabv2_resnet101": _deeplabv2_resnet101,
    "deeplabv3plus_resnet101": _deeplabv3plus_resnet101,
}

# The heads a timm backbone can carry, by the name create_generator takes.
HEADS = ("aspp", "deeplabv3plus")


def _timm_generator(
    name: str,
    num_classes: int,
    pretrained: bool,
    output_stride: int | None,
    head: str,
    kwargs: dict[str, Any],
    head_kwargs: dict[str, Any] | None = None,
) -> SegmentationGenerator:
    encoder = TimmEncoder(name, pretrained=pretrained, output_stride=output_stride, **kwargs)
    options = dict(head_kwargs or {})
    if head == "aspp":
        module: nn.Module = ASPP(encoder.out_channels, num_classes, **options)
    else:
        # The rates are DeepLabV3's at stride 16; at stride 8 the maps are twice as large.
        options.setdefault("dilations", (6, 12, 18) if encoder.reduction >= 16 else (12, 24, 36))
        low = encoder.feature_channels[encoder.low_level_index()]
        module = DeepLabV3PlusHead(encoder.out_channels, low, num_classes, **options)
    return SegmentationGenerator(encoder, module, num_classes)


# Names timm resolves itself (Hugging Face hub, local folders); they cannot be listed.
_TIMM_SOURCE_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")


def _check_name(name: str) -> None:
    if name in PRESETS or name.startswith(_TIMM_SOURCE_PREFIXES) or timm.is_model(name):
        return
    close = difflib.get_close_matches(name, [*PRESETS, *timm.list_models()], n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "no close match"
    raise ValueError(
        f"unknown generator {name!r} ({hint}). Use a preset ({', '.join(sorted(PRESETS))}) "
        "or the name of a timm model that supports features_only (see timm.list_models())"
    )


def create_generator(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    *,
    output_stride: int | None = None,
    head: str = "aspp",
    head_kwargs: dict[str, Any] | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> SegmentationGenerator:
    """Build a generator: a timm backbone (or a preset) with a DeepLab head.

    Args:
        name: a timm model name (``"resnet101"``, ``"convnext_tiny"``, ``"test_resnet"``,
            a tagged ``"resnet50.a1_in1k"`` or an ``"hf-hub:"`` name), or a preset:
            ``"deeplabv2_resnet101"``, the original Caffe-style DeepLabV2 backbone of S4GAN
            (see :mod:`s4seg.models.deeplabv2`), or ``"deeplabv3plus_resnet101"``, UniMatch's
            network (timm ResNet-101 at stride 16 with :class:`DeepLabV3PlusHead`).
        num_classes: number of classes the head predicts.
        pretrained: passed through to timm (ImageNet weights, needs the network or timm's
            cache). Weights already on disk: ``pretrained=True,
            pretrained_cfg_overlay=dict(file=path)`` for timm backbones.
        output_stride: 8 or 16 (32 without dilation). None means 16 for timm backbones
            that can dilate, the native stride for those that cannot (ViT 16, DINOv2 14,
            Swin 32), and 8 for the DeepLabV2 preset, which has no other.
        head: for timm backbones, ``"aspp"`` (DeepLabV2's :class:`ASPP`, S4GAN's) or
            ``"deeplabv3plus"`` (:class:`DeepLabV3PlusHead`, fusing the stride-4 map).
        head_kwargs: passed to the head (``dilations``; for DeepLabV3+ also
            ``aspp_channels``, ``decoder_channels``, ``low_level_out``: small values
            make a small, fast head for small images).
        checkpoint_path: a file holding this generator's own state_dict (bare, or under a
            ``"model"`` / ``"state_dict"`` key), loaded strictly after construction.
        **kwargs: passed to ``timm.create_model`` (e.g. ``in_chans``, ``drop_path_rate``), or
            to the preset's builder (``freeze_bn``); ``None`` values are dropped.

    Raises:
        ValueError: unknown name (the message lists close matches), unsupported
            output_stride, ``num_classes < 1``, or a checkpoint that does not match.
        FileNotFoundError: ``checkpoint_path`` does not exist.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    _check_name(name)
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if name in PRESETS:
        if head != "aspp" or head_kwargs:
            raise ValueError(
                f"preset {name!r} has its own head; leave head and head_kwargs unset (the "
                f"presets are "
                f"{', '.join(sorted(PRESETS))})"
            )
        generator = PRESETS[name](
            num_classes, pretrained=pretrained, output_stride=output_stride, **kwargs
        )
    else:
        stride = output_stride  # None: 16 where the backbone can dilate, else its native
        generator = _timm_generator(
            name, num_classes, pretrained, stride, head, kwargs, head_kwargs
        )
    if checkpoint_path is not None:
        load_weights(generator, checkpoint_path)
    return generator
