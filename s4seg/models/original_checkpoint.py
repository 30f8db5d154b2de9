"""Load the generator and discriminator checkpoints that the original S4GAN code saved.

The original (github.com/sud0301/semisup-semseg, ``train_s4GAN.py``) wraps both networks
in ``torch.nn.DataParallel`` and saves ``model.state_dict()`` and
``model_D.state_dict()`` (``VOC_5000.pth`` and ``VOC_5000_D.pth``), so every key starts
with ``module.``:

* generator (``model/deeplabv2.py``, ``Res_Deeplab``): the ResNet's ``conv1``, ``bn1``,
  ``layer1``..``layer4`` (bottlenecks with ``conv1..3``, ``bn1..3`` and
  ``downsample.0`` / ``downsample.1``), and the classifier ``layer5.conv2d_list.N``.
  s4seg's DeepLabV2 generator holds the same tensors as ``encoder.<key>`` and
  ``head.conv2d_list.N`` (:class:`~s4seg.models.deeplabv2.DeepLabV2ResNet`,
  :class:`~s4seg.models.heads.ASPP`).
* discriminator (``model/discriminator.py``, ``s4GAN_discriminator``): ``conv1``..``conv4``
  and ``fc``, the names of :class:`~s4seg.models.discriminator.FMDiscriminator`.

What the weights mean is unchanged, with two caveats (docs/differences.md): the
original's classifier summed only two of its four branches, and its VOC inputs were
BGR with Caffe's means subtracted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from s4seg.models.encoder import state_mismatches

__all__ = ["load_original_checkpoint", "original_discriminator_keys", "original_generator_keys"]

_HEAD = "layer5."
_BN_COUNTER = "num_batches_tracked"  # absent from files saved by torch < 0.4.1


def original_generator_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An original ``Res_Deeplab`` state dict in s4seg's generator names.

    ``module.`` is dropped; ``layer5.`` becomes ``head.``; every other key gets the
    ``encoder.`` prefix.
    """
    out = {}
    for key, value in _unwrapped(state).items():
        out["head." + key[len(_HEAD) :] if key.startswith(_HEAD) else "encoder." + key] = value
    return out


def original_discriminator_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """An original ``s4GAN_discriminator`` state dict in s4seg's names (``module.`` dropped)."""
    return _unwrapped(state)


def load_original_checkpoint(
    *,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    path_g: str | os.PathLike[str] | None = None,
    path_d: str | os.PathLike[str] | None = None,
) -> None:
    """Load checkpoints of the original S4GAN code into s4seg's networks, strictly.

    Args:
        generator: a generator of ``create_generator("deeplabv2_resnet101", num_classes)``
            (the original's DeepLabV2-ResNet101) with the original's ``--num-classes``.
        discriminator: ``FMDiscriminator(num_classes)`` (``ndf=64``, RGB: 3 image channels).
        path_g: the original's generator file (``VOC_5000.pth``), loaded into ``generator``.
        path_d: the original's discriminator file (``VOC_5000_D.pth``).

    Raises:
        ValueError: a network without its file or a file without its network; a file
            that holds no state dict; keys or shapes that do not match (the message names
            the file and the first unmatched keys, and how to fix it).
        FileNotFoundError: a file does not exist.
    """
    pairs = [("generator", generator, "path_g", path_g),
             ("discriminator", discriminator, "path_d", path_d)]  # fmt: skip
    if all(module is None and path is None for _, module, _, path in pairs):
        raise ValueError("pass generator= and path_g=, discriminator= and path_d=, or both pairs")
    for name, module, arg, path in pairs:
        if (module is None) != (path is None):
            given, missing = (arg, name) if module is None else (name, arg)
            raise ValueError(f"{given} is given without {missing}=: pass both, or neither")
    if generator is not None and path_g is not None:
        state = original_generator_keys(_read(path_g))
        _load(generator, state, Path(path_g), _GENERATOR_FIX)
    if discriminator is not None and path_d is not None:
        state = original_discriminator_keys(_read(path_d))
        _load(discriminator, state, Path(path_d), _DISCRIMINATOR_FIX)


_GENERATOR_FIX = (
    "build the generator as the original's network: create_generator('deeplabv2_resnet101', "
    "num_classes=<its --num-classes>); is the file the discriminator's (*_D.pth)?"
)
_DISCRIMINATOR_FIX = (
    "build FMDiscriminator(num_classes=<its --num-classes>) (ndf=64, 3 image channels); is "
    "the file the generator's (not *_D.pth)?"
)


def _unwrapped(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # DataParallel's prefix; a file saved from the bare model has none.
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


def _read(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"{str(file)!r} is not a file; pass a checkpoint the original train_s4GAN.py saved "
            f"(VOC_<step>.pth for the generator, VOC_<step>_D.pth for the discriminator)"
        )
    obj: Any = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"{str(file)!r} holds a {type(obj).__name__}, not a state dict (names -> tensors); "
            f"pass the file of torch.save(model.state_dict(), ...) of the original code"
        )
    return dict(obj)


def _first(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def _load(module: nn.Module, state: dict[str, Tensor], path: Path, fix: str) -> None:
    expected = module.state_dict()
    # The BN step counter is not a weight (BN uses its momentum); older files lack it.
    for key in expected:
        if key.endswith(_BN_COUNTER) and key not in state:
            state[key] = expected[key]
    missing, unexpected, mismatched = state_mismatches(expected, state)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} keys of the model not in the file: {_first(missing)}")
        if unexpected:
            parts.append(
                f"{len(unexpected)} keys of the file not in the model: {_first(unexpected)}"
            )
        if mismatched:
            parts.append(f"{len(mismatched)} shapes differ: {_first(mismatched, 3)}")
        raise ValueError(
            f"{str(path)!r} does not fit {type(module).__name__} after mapping the original's "
            f"names: {'; '.join(parts)}. Fix: {fix}"
        )
    module.load_state_dict(state, strict=True)
