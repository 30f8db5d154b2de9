"""Backbones as encoders: any timm model with ``features_only``, and checkpoint loading.

An encoder maps an image batch to its last (deepest) feature map and states what it
produces through three attributes that the rest of s4seg reads:

- ``in_channels``: channels the input must have;
- ``out_channels``: channels of the returned feature map;
- ``reduction``: output stride, input size / feature-map size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SUPPORTED_OUTPUT_STRIDES",
    "TimmEncoder",
    "check_image_batch",
    "load_weights",
    "state_mismatches",
]

# Dilated (8, 16) or plain (32) strides; these are the values timm's CNNs accept.
SUPPORTED_OUTPUT_STRIDES = (8, 16, 32)

# How many key names an error message lists before it says "and N more".
_MAX_KEYS_SHOWN = 10


def check_image_batch(x: Tensor, in_channels: int, owner: str) -> None:
    """Raise a ValueError unless ``x`` is a (B, in_channels, H, W) batch.

    Args:
        x: the batch to check.
        in_channels: the channel count the model was built for.
        owner: the model's name, for the message.
    """
    if x.ndim != 4:
        raise ValueError(
            f"{owner} expects an image batch of shape (B, {in_channels}, H, W), got a "
            f"{x.ndim}-d tensor of shape {tuple(x.shape)}; add a batch dimension with "
            "x.unsqueeze(0) for a single image"
        )
    if x.shape[1] != in_channels:
        raise ValueError(
            f"{owner} expects {in_channels} input channels, got {x.shape[1]} "
            f"(input shape {tuple(x.shape)}); pass channels first (B, C, H, W) or build "
            f"the model with in_chans={x.shape[1]}"
        )


def _shorten(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = len(keys) - _MAX_KEYS_SHOWN
    return f"[{shown}{f', ... and {more} more' if more > 0 else ''}]"


def state_mismatches(
    expected: Mapping[str, Tensor], state: Mapping[str, Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """How a state dict differs from a module's: missing keys, unexpected keys, and
    ``"key: file (shape) vs model (shape)"`` for keys whose shapes differ; each sorted."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if state[k].shape != expected[k].shape
    ]
    return missing, unexpected, mismatched


def load_weights(module: nn.Module, checkpoint_path: str | os.PathLike[str]) -> None:
    """Load a state_dict saved on disk into ``module``, strictly, on CPU.

    The file holds ``module.state_dict()`` as written by ``torch.save``, either bare or
    under a ``"model"`` or ``"state_dict"`` key of a training checkpoint. A ``module.``
    prefix on every key (``DataParallel`` / DDP) is removed. The file is read with
    ``weights_only=True``: tensors and plain containers only, no pickled code.

    Args:
        module: the model to load into.
        checkpoint_path: the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file holds no state_dict, or its keys or shapes do not match the
            model's; the message lists the missing, unexpected and mismatched keys.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint_path={str(path)!r} is not a file; pass the path of a file written "
            "by torch.save(model.state_dict(), path)"
        )
    obj = torch.load(path, map_location="cpu", weights_only=True)
    state: Any = obj
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            state = obj[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{str(path)!r} holds a {type(state).__name__} that is not a state_dict (a "
            "mapping of names to tensors); save model.state_dict(), or a dict holding it "
            "under 'model' or 'state_dict'"
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}

    missing, unexpected, mismatched = state_mismatches(module.state_dict(), state)
    if missing or unexpected or mismatched:
        raise ValueError(
            f"{str(path)!r} does not match {type(module).__name__}: "
            f"{len(missing)} missing keys {_shorten(missing)}, "
            f"{len(unexpected)} unexpected keys {_shorten(unexpected)}, "
            f"{len(mismatched)} shape mismatches {_shorten(mismatched)}; build the model with "
            "the same name, num_classes and options it was saved with"
        )
    module.load_state_dict(state, strict=True)


# Options that let a transformer take images of any size; each is passed only to the
# models that accept it (a model that does not rejects it in its __init__).
_ANY_SIZE = {"dynamic_img_size": True, "dynamic_img_pad": True, "strict_img_size": False}


def _create_any_size(name: str, output_stride: int | None, common: dict[str, Any]) -> nn.Module:
    """``timm.create_model`` with the stride and any-size options the model accepts."""
    # None: stride 16 where the model can dilate (DeepLab's), else its native stride.
    options: dict[str, Any] = {**_ANY_SIZE, **common, "output_stride": output_stride or 16}
    while True:
        try:
            return timm.create_model(name, **options)
        except TypeError as err:
            # A model without an option rejects it by name; drop it and try again. A
            # stride it cannot dilate to is checked against its native stride after.
            rejected = [k for k in ("output_stride", *_ANY_SIZE) if k in options and k in str(err)]
            if not rejected or rejected[0] in common:
                raise
            del options[rejected[0]]


def _input_multiple(model: nn.Module) -> int:
    """The patch size a model needs whole patches of, when it does not pad itself."""
    embed = getattr(model, "patch_embed", None)
    if embed is None or getattr(embed, "dynamic_img_pad", False):
        return 1
    size = getattr(embed, "patch_size", 1)
    return int(max(size)) if isinstance(size, (tuple, list)) else int(size)


class TimmEncoder(nn.Module):
    """Any timm model that supports ``features_only``, returning its deepest feature map.

    Dilated output strides (8 or 16) are requested from timm with ``output_stride``, the
    way DeepLab-style segmentation networks keep spatial detail. Models that cannot
    dilate (vision transformers, Swin) run at their native stride (16 for ViT-B/16, 14
    for DINOv2's ViT-S/14, 32 for Swin's last stage) with ``output_stride=None``; a
    different explicit stride is refused.

    Transformers are built for images of any size: timm's ``dynamic_img_size`` (and,
    for ViTs, ``dynamic_img_pad``, which pads to a whole number of patches) and
    ``strict_img_size=False`` are set where the model takes them, and an input is
    padded to a multiple of the patch size (``input_multiple``) for models that need
    whole patches (Swin); settings passed explicitly win.

    Args:
        name: a timm model name, e.g. ``"resnet50"``, ``"convnext_tiny"``,
            ``"efficientnet_b0"``, or the tiny ``"test_resnet"`` for tests.
        pretrained: passed to timm (downloads ImageNet weights when online). For weights
            already on disk use ``pretrained=True, pretrained_cfg_overlay=dict(file=path)``,
            which timm loads and adapts exactly as a download.
        output_stride: 8, 16 or 32; None: 16 for models that can dilate, else the
            model's native stride.
        in_chans: input channels (timm adapts the first conv of pretrained weights).
        checkpoint_path: a file holding this encoder's own ``state_dict()``, loaded after
            construction (see :func:`load_weights`).
        **kwargs: passed to ``timm.create_model``; ``None`` values are dropped, as timm's
            own factory does, so callers can forward optional settings unconditionally.

    Shape:
        x: (B, in_chans, H, W).
        output: (B, out_channels, ceil(H / reduction), ceil(W / reduction)) for the usual
            CNNs (the exact rounding is the backbone's).
    """

    def __init__(
        self,
        name: str,
        *,
        pretrained: bool = False,
        output_stride: int | None = 16,
        in_chans: int = 3,
        checkpoint_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if output_stride is not None and output_stride not in SUPPORTED_OUTPUT_STRIDES:
            raise ValueError(
                f"output_stride={output_stride!r} is not supported; use one of "
                f"{SUPPORTED_OUTPUT_STRIDES} (8 or 16 dilate the last stages as DeepLab does), "
                "or None for the model's native stride"
            )
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        common = dict(pretrained=pretrained, features_only=True, in_chans=in_chans, **kwargs)
        model = _create_any_size(name, output_stride, common)
        feature_info: Any = model.feature_info
        reduction = int(feature_info.reduction()[-1])
        if output_stride is not None and reduction != output_stride:
            raise ValueError(
                f"timm model {name!r} does not support output_stride={output_stride}: its "
                f"last feature map has stride {reduction}. Pass output_stride=None (its native "
                "stride), or choose a CNN backbone that can dilate (resnet*, convnext*, "
                "efficientnet*)"
            )
        self.model = model
        self.name = name
        self.in_channels = in_chans
        self.out_channels = int(feature_info.channels()[-1])
        self.reduction = reduction
        # Every stage's map, for heads that fuse a shallower one (DeepLabV3+).
        self.feature_channels = tuple(int(c) for c in feature_info.channels())
        self.feature_reductions = tuple(int(r) for r in feature_info.reduction())
        # Some backbones (Swin, MaxViT) return channels-last feature maps; the head wants NCHW.
        fmt = getattr(model, "output_fmt", "NCHW")
        self.channels_last_output = str(getattr(fmt, "value", fmt)) == "NHWC"
        # Models that need whole patches and do not pad themselves (Swin): the input is
        # padded to this multiple, and the features cover the padding.
        self.input_multiple = _input_multiple(model)
        if checkpoint_path is not None:
            load_weights(self, checkpoint_path)

    def forward(self, x: Tensor) -> Tensor:
        """Return the deepest feature map, channels first."""
        return self.forward_features(x)[-1]

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Every stage's feature map, shallow to deep, channels first.

        Their channels and strides are ``feature_channels`` and ``feature_reductions``.
        """
        check_image_batch(x, self.in_channels, f"TimmEncoder({self.name!r})")
        m = self.input_multiple
        if m > 1 and (x.shape[-2] % m or x.shape[-1] % m):
            x = F.pad(x, (0, -x.shape[-1] % m, 0, -x.shape[-2] % m))
        features = self.model(x)
        if self.channels_last_output:
            features = [f.permute(0, 3, 1, 2) for f in features]
        return list(features)

    def low_level_index(self, reduction: int = 4) -> int:
        """Index of the deepest stage at ``reduction`` (DeepLabV3+ fuses the stride-4 map)."""
        matches = [i for i, r in enumerate(self.feature_reductions) if r == reduction]
        if not matches:
            raise ValueError(
                f"timm model {self.name!r} has no feature map at stride {reduction} (its "
                f"strides are {self.feature_reductions}); pick a low-level stride it has"
            )
        return matches[-1]

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, in_channels={self.in_channels}, "
            f"out_channels={self.out_channels}, reduction={self.reduction}"
        )
