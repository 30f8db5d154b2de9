"""Checkpoints saved by the original S4GAN code load into s4seg's networks.

The original's layout, from github.com/sud0301/semisup-semseg: ``train_s4GAN.py`` saves
``torch.nn.DataParallel(model).state_dict()`` (every key under ``module.``);
``model/deeplabv2.py``'s ``ResNet`` holds ``conv1``, ``bn1``, ``layer1``..``layer4`` of
``Bottleneck`` s (``conv1..3``, ``bn1..3``, and ``downsample`` = Sequential(conv, BN) on
the first block of every stage: its condition ``stride != 1 or inplanes != planes * 4 or
dilation in (2, 4)`` holds for each) and ``layer5 = Classifier_Module`` with
``conv2d_list`` of four biased 3x3 convs; ``model/discriminator.py`` has ``conv1``..``conv4``
and ``fc`` (pooling, activations and dropout hold no tensors). ``original_keys`` below
writes those names out from that structure, independently of s4seg's modules.
"""

from __future__ import annotations

import pytest
import torch

from s4seg.models import FMDiscriminator, load_original_checkpoint
from s4seg.models.deeplabv2 import DeepLabV2ResNet
from s4seg.models.generator import SegmentationGenerator
from s4seg.models.heads import ASPP

LAYERS = (1, 2, 1, 1)  # a small DeepLabV2 with the ResNet-101 layout; (3, 4, 23, 3) is 101
CLASSES = 5
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def original_keys(layers=LAYERS) -> set[str]:
    """The keys of the original's DataParallel(Res_Deeplab) state dict."""
    keys = {"module.conv1.weight", *(f"module.bn1.{b}" for b in BN)}
    for stage, blocks in enumerate(layers, start=1):
        for j in range(blocks):
            p = f"module.layer{stage}.{j}."
            keys |= {p + f"conv{c}.weight" for c in (1, 2, 3)}
            keys |= {p + f"bn{c}.{b}" for c in (1, 2, 3) for b in BN}
            if j == 0:
                keys |= {p + "downsample.0.weight", *(p + f"downsample.1.{b}" for b in BN)}
    keys |= {f"module.layer5.conv2d_list.{i}.{w}" for i in range(4) for w in ("weight", "bias")}
    return keys


def generator() -> SegmentationGenerator:
    encoder = DeepLabV2ResNet(LAYERS)
    return SegmentationGenerator(encoder, ASPP(encoder.out_channels, CLASSES), CLASSES)


def as_original(module: torch.nn.Module, *, generator: bool) -> dict[str, torch.Tensor]:
    """s4seg's state dict renamed the way the original names it, with random values."""
    out = {}
    for key, value in module.state_dict().items():
        if generator:
            key = key.replace("head.", "layer5.", 1) if key.startswith("head.") else key[8:]
        out["module." + key] = torch.randn_like(value.float()).to(value.dtype)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("original")
    g_state = as_original(generator(), generator=True)
    d_state = as_original(FMDiscriminator(CLASSES), generator=False)
    torch.save(g_state, folder / "VOC_5000.pth")
    torch.save(d_state, folder / "VOC_5000_D.pth")
    return folder, g_state, d_state


def test_the_renaming_gives_exactly_the_originals_keys(files):
    _, g_state, d_state = files
    assert set(g_state) == original_keys()
    assert set(d_state) == {f"module.{n}.{w}" for n in ("conv1", "conv2", "conv3", "conv4", "fc")
                            for w in ("weight", "bias")}  # fmt: skip


def test_load_both_networks(files):
    folder, g_state, d_state = files
    g, d = generator(), FMDiscriminator(CLASSES)
    load_original_checkpoint(generator=g, discriminator=d, path_g=folder / "VOC_5000.pth",
                             path_d=folder / "VOC_5000_D.pth")  # fmt: skip
    ours = g.state_dict()
    assert torch.equal(ours["encoder.layer2.1.conv2.weight"],
                       g_state["module.layer2.1.conv2.weight"])  # fmt: skip
    assert torch.equal(ours["head.conv2d_list.3.bias"], g_state["module.layer5.conv2d_list.3.bias"])
    assert torch.equal(d.state_dict()["fc.weight"], d_state["module.fc.weight"])


def test_a_file_of_torch_before_0_4_1_lacks_the_bn_counter(tmp_path, files):
    _, g_state, _ = files
    old = {k: v for k, v in g_state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    load_original_checkpoint(generator=generator(), path_g=tmp_path / "old.pth")


def test_a_mismatch_names_the_file_the_keys_and_the_fix(files):
    folder, _, _ = files
    with pytest.raises(ValueError) as err:  # the two files swapped
        load_original_checkpoint(generator=generator(), path_g=folder / "VOC_5000_D.pth")
    text = str(err.value)
    assert "VOC_5000_D.pth" in text and "keys of the model not in the file: encoder.bn1" in text
    assert "create_generator('deeplabv2_resnet101'" in text
    with pytest.raises(ValueError, match=r"VOC_5000_D.pth.*shapes differ: conv1.weight.*"
                                         r"FMDiscriminator\(num_classes="):  # fmt: skip
        load_original_checkpoint(discriminator=FMDiscriminator(CLASSES + 1),
                                 path_d=folder / "VOC_5000_D.pth")  # fmt: skip


def test_bad_calls(tmp_path):
    with pytest.raises(ValueError, match="path_g is given without generator"):
        load_original_checkpoint(path_g="x.pth")
    with pytest.raises(ValueError, match="pass generator= and path_g="):
        load_original_checkpoint()
    with pytest.raises(FileNotFoundError, match=r"nope.pth.*VOC_<step>.pth"):
        load_original_checkpoint(generator=generator(), path_g=tmp_path / "nope.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list.pth.*holds a list, not a state dict"):
        load_original_checkpoint(generator=generator(), path_g=tmp_path / "list.pth")


def test_the_resnet101_preset_has_the_originals_keys():
    from s4seg.models import create_generator

    with torch.device("meta"):  # the layout only: no memory, no init cost
        g = create_generator("deeplabv2_resnet101", 21)
    renamed = {("module.layer5." + k[5:]) if k.startswith("head.") else "module." + k[8:]
               for k in g.state_dict()}  # fmt: skip
    assert renamed == original_keys((3, 4, 23, 3))
