"""The ``model:`` section of a run config: which generator :func:`s4seg.models.create_generator`
builds."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from s4seg.cli.errors import CommandError

if TYPE_CHECKING:
    from s4seg.models import SegmentationGenerator

__all__ = ["InitFrom", "ModelConfig", "build_generator", "load_init_from"]


@dataclass
class ModelConfig:
    """The generator: a timm backbone name or a preset, with its head and weights.

    Args:
        name: any timm model that supports ``features_only`` (``resnet50``,
            ``convnext_tiny``, ``test_resnet``) or a preset (``deeplabv2_resnet101``,
            ``deeplabv3plus_resnet101``).
        pretrained: ImageNet weights through timm (needs the network or timm's cache).
        checkpoint_path: a file holding this generator's own ``state_dict``.
        output_stride: 8 or 16 (None: 16 where the backbone can dilate; 8 for DeepLabV2).
        head: for timm backbones, ``aspp`` (S4GAN's) or ``deeplabv3plus``.
        head_kwargs: passed to the head (``dilations``, ``aspp_channels``, ...).
        timm_kwargs: passed to ``timm.create_model`` or to the preset (``drop_path_rate``).
    """

    name: str = "deeplabv2_resnet101"
    pretrained: bool = False
    checkpoint_path: str | None = None
    output_stride: int | None = None
    head: Literal["aspp", "deeplabv3plus"] = "aspp"
    head_kwargs: dict[str, Any] | None = None
    timm_kwargs: dict[str, Any] = field(default_factory=dict)


def build_generator(
    model: ModelConfig, num_classes: int, *, weights: bool = True
) -> SegmentationGenerator:
    """The generator the config names.

    Args:
        model: the ``model:`` section.
        num_classes: classes of the data.
        weights: load ``pretrained`` / ``checkpoint_path``; False when a run's own
            checkpoint is loaded afterwards (nothing is downloaded then).

    Raises:
        CommandError: an unknown name (with close matches), a bad stride or checkpoint.
    """
    from s4seg.models import create_generator

    if not weights:
        model = replace(model, pretrained=False, checkpoint_path=None)
    try:
        return create_generator(
            model.name,
            num_classes,
            model.pretrained,
            output_stride=model.output_stride,
            head=model.head,
            head_kwargs=model.head_kwargs,
            checkpoint_path=model.checkpoint_path,
            **model.timm_kwargs,
        )
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        raise CommandError(f"model: {err}") from err


@dataclass
class InitFrom:
    """Start from checkpoints of the original S4GAN code (``train_s4GAN.py``).

    The original saves DataParallel state dicts (``VOC_5000.pth``, ``VOC_5000_D.pth``);
    :func:`s4seg.models.load_original_checkpoint` maps their keys onto s4seg's
    DeepLabV2 generator and feature-matching discriminator. Only a fresh run starts
    from them: a resumed run continues from its own ``last.pt``.

    Args:
        generator: the original's generator file (``model.name`` must be
            ``deeplabv2_resnet101``, ``data.num_classes`` the original's).
        discriminator: the original's discriminator file (the method's
            ``discriminator`` must be ``FMDiscriminator`` with ``ndf=64``).
    """

    generator: str | None = None
    discriminator: str | None = None


def load_init_from(init: InitFrom, generator: Any, method: Any) -> list[str]:
    """Load what ``init`` names into the run's networks; returns what was loaded.

    Raises:
        CommandError: a discriminator file for a method without a discriminator, or a
            file that does not fit (the message names the file and the first keys).
    """
    from s4seg.models import load_original_checkpoint

    if init.generator is None and init.discriminator is None:
        return []
    discriminator = getattr(method, "discriminator", None) if init.discriminator else None
    if init.discriminator is not None and discriminator is None:
        raise CommandError(
            f"init_from.discriminator={init.discriminator!r}, but the method "
            f"{type(method).__name__} has no discriminator: use an S4GAN method, or drop "
            "the key"
        )
    try:
        load_original_checkpoint(
            generator=generator if init.generator else None,
            discriminator=discriminator,
            path_g=init.generator,
            path_d=init.discriminator,
        )
    except (ValueError, FileNotFoundError) as err:
        raise CommandError(f"init_from: {err}") from err
    return [f"{name} from {path}" for name, path in
            (("generator", init.generator), ("discriminator", init.discriminator)) if path]  # fmt: skip
