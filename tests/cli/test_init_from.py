"""``init_from``: a run starts from checkpoints of the original S4GAN code."""

from __future__ import annotations

import pytest
import torch

from s4seg.cli.errors import CommandError
from s4seg.cli.model_config import InitFrom, load_init_from
from s4seg.methods import S4GAN, Supervised
from s4seg.models import FMDiscriminator
from s4seg.models.deeplabv2 import DeepLabV2ResNet
from s4seg.models.generator import SegmentationGenerator
from s4seg.models.heads import ASPP

CLASSES = 4


def small_deeplabv2() -> SegmentationGenerator:
    encoder = DeepLabV2ResNet((1, 1, 1, 1))  # the ResNet-101 layout, fewer blocks
    return SegmentationGenerator(encoder, ASPP(encoder.out_channels, CLASSES), CLASSES)


def original_layout(module: torch.nn.Module, *, generator: bool) -> dict[str, torch.Tensor]:
    # The original saves DataParallel state dicts; its DeepLabV2 head is layer5 and its
    # ResNet has no encoder prefix (tests/models/test_original_checkpoint.py derives this).
    out = {}
    for key, value in module.state_dict().items():
        if generator:
            key = "layer5." + key[5:] if key.startswith("head.") else key.removeprefix("encoder.")
        out["module." + key] = torch.randn_like(value.float()).to(value.dtype)
    return out


def test_both_networks_start_from_the_originals_files(tmp_path) -> None:
    g_state = original_layout(small_deeplabv2(), generator=True)
    d_state = original_layout(FMDiscriminator(CLASSES), generator=False)
    torch.save(g_state, tmp_path / "VOC_5000.pth")
    torch.save(d_state, tmp_path / "VOC_5000_D.pth")
    generator, method = small_deeplabv2(), S4GAN(discriminator=FMDiscriminator(CLASSES))
    init = InitFrom(str(tmp_path / "VOC_5000.pth"), str(tmp_path / "VOC_5000_D.pth"))
    loaded = load_init_from(init, generator, method)
    assert loaded == [
        f"generator from {tmp_path / 'VOC_5000.pth'}",
        f"discriminator from {tmp_path / 'VOC_5000_D.pth'}",
    ]
    assert torch.equal(generator.head.state_dict()["conv2d_list.0.weight"],
                       g_state["module.layer5.conv2d_list.0.weight"])  # fmt: skip
    assert torch.equal(method.discriminator.state_dict()["fc.weight"], d_state["module.fc.weight"])


def test_nothing_named_loads_nothing() -> None:
    assert load_init_from(InitFrom(), small_deeplabv2(), Supervised()) == []


def test_a_discriminator_file_for_a_method_without_one_is_refused(tmp_path) -> None:
    with pytest.raises(CommandError, match="has no discriminator"):
        load_init_from(InitFrom(discriminator=str(tmp_path / "D.pth")), small_deeplabv2(),
                       Supervised())  # fmt: skip


def test_a_file_that_does_not_fit_names_it(tmp_path) -> None:
    torch.save({"module.fc.weight": torch.zeros(1)}, tmp_path / "VOC_5000.pth")
    with pytest.raises(CommandError, match=r"init_from: .*VOC_5000\.pth"):
        load_init_from(InitFrom(str(tmp_path / "VOC_5000.pth")), small_deeplabv2(), Supervised())


def test_the_config_has_the_keys() -> None:
    from s4seg.cli.config_parser import parse_config

    run = parse_config(None, ["--init_from.generator=VOC_5000.pth"])
    assert run.init_from == InitFrom(generator="VOC_5000.pth")
