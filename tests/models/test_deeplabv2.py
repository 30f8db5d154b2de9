"""The DeepLabV2 (Caffe-style) ResNet: ImageNet keys load, and it is not timm's stride-8 ResNet."""

from __future__ import annotations

import copy
import math
from functools import cache

import pytest
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import s4seg.models.deeplabv2 as deeplabv2_module
from s4seg.models import DeepLabV2ResNet, deeplabv2_resnet101

# ResNet-26 depth (2 bottlenecks per stage): every difference between the two designs sits in
# the stem and in the first block of each stage, so a shallow network shows them cheaply.
SHALLOW = (2, 2, 2, 2)


@pytest.fixture(scope="module")
def resnet101_backbone() -> DeepLabV2ResNet:
    return deeplabv2_resnet101()


@pytest.fixture(scope="module")
def timm_resnet101_os8() -> nn.Module:
    return timm.create_model("resnet101", pretrained=False, output_stride=8)


def _imagenet_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def _randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    # timm zero-initialises each block's last BN, which makes every residual branch
    # vanish; random statistics make all convolutions count in the comparison.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.2 - 0.1)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model


@cache
def _tiny_backbone() -> DeepLabV2ResNet:
    return DeepLabV2ResNet((1, 1, 1, 1)).eval()


def _timm_shallow(output_stride: int) -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("resnet26", output_stride=output_stride)
    return _randomize_batchnorm(model, seed=0).eval()


def test_timm_resnet101_weights_load_by_key(resnet101_backbone, timm_resnet101_os8) -> None:
    state = _imagenet_state(timm_resnet101_os8)
    result = resnet101_backbone.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    # 104 convs (no bias) + 104 BN layers x 5 tensors.
    assert len(resnet101_backbone.state_dict()) == len(state) == 624
    torch.testing.assert_close(
        resnet101_backbone.layer3[22].conv3.weight, state["layer3.22.conv3.weight"], rtol=0, atol=0
    )


def test_torchvision_resnet101_weights_load_by_key(resnet101_backbone) -> None:
    torchvision = pytest.importorskip("torchvision")
    state = _imagenet_state(torchvision.models.resnet101(weights=None))
    result = resnet101_backbone.load_state_dict(state, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_structure_is_caffe_style_not_timms(resnet101_backbone, timm_resnet101_os8) -> None:
    ours, theirs = resnet101_backbone, timm_resnet101_os8
    # Stride of layer2's first block: on the 1x1 conv1 (Caffe) vs on the 3x3 conv2 (timm).
    assert ours.layer2[0].conv1.stride == (2, 2) and ours.layer2[0].conv2.stride == (1, 1)
    assert theirs.layer2[0].conv1.stride == (1, 1) and theirs.layer2[0].conv2.stride == (2, 2)
    # Dilation in every block, the first included; timm gives first blocks the previous rate.
    assert {b.conv2.dilation for b in ours.layer3} == {(2, 2)}
    assert {b.conv2.dilation for b in ours.layer4} == {(4, 4)}
    assert all(b.conv2.padding == b.conv2.dilation for b in [*ours.layer3, *ours.layer4])
    assert theirs.layer3[0].conv2.dilation == (1, 1) and theirs.layer4[0].conv2.dilation == (2, 2)
    # No stride after layer2.
    strides = {
        m.stride
        for layer in (ours.layer3, ours.layer4)
        for m in layer.modules()
        if isinstance(m, nn.Conv2d)
    }
    assert strides == {(1, 1)}
    assert ours.maxpool.ceil_mode and not theirs.maxpool.ceil_mode


@pytest.mark.parametrize(("size", "expected"), [(65, 9), (33, 5), (32, 5), (16, 3)])
def test_feature_size_hand_computed(size: int, expected: int) -> None:
    # conv1 (stride 2, pad 3) -> ceil-mode max-pool -> layer2's stride-2 1x1 conv:
    # 65 -> 33 -> 17 -> 9 (and 321 -> 161 -> 81 -> 41, DeepLabV2's 41x41 score map);
    # 32 -> 16 -> 9 (ceil) -> 5, where timm's floor max-pool gives 16 -> 8 -> 4.
    backbone = _tiny_backbone()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, size, size))
    assert out.shape == (1, 2048, expected, expected)


@settings(max_examples=10, deadline=None)
@given(h=st.integers(16, 90), w=st.integers(16, 90))
def test_feature_size_follows_caffe_rounding(h: int, w: int) -> None:
    def caffe(n: int) -> int:
        return math.ceil((math.ceil(n / 2) // 2 + 1) / 2)

    backbone = _tiny_backbone()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, h, w))
    assert out.shape[-2:] == (caffe(h), caffe(w))


def test_timm_stride8_resnet_is_a_different_network() -> None:
    theirs = _timm_shallow(output_stride=8)
    ours = DeepLabV2ResNet(SHALLOW).eval()
    ours.load_state_dict(_imagenet_state(theirs), strict=True)
    with torch.no_grad():
        # Same weights, same output size at 33 pixels, different features.
        x = torch.randn(1, 3, 33, 33)
        a, b = ours(x), theirs.forward_features(x)
        assert a.shape == b.shape == (1, 2048, 5, 5)
        assert (a - b).abs().max() > 0.1 * b.abs().max()
        # At 32 pixels the ceil-mode max-pool even changes the output size.
        assert ours(x[..., :32, :32]).shape[-2:] == (5, 5)
        assert theirs.forward_features(x[..., :32, :32]).shape[-2:] == (4, 4)


def test_timm_resnet_rebuilt_in_caffe_style_gives_the_same_features() -> None:
    # Positive control for the test above: move timm's stride and dilations to where
    # DeepLabV2 has them and the outputs agree, so those are the only differences.
    reference = copy.deepcopy(_timm_shallow(output_stride=8))
    reference.maxpool.ceil_mode = True
    reference.layer2[0].conv1.stride = (2, 2)
    reference.layer2[0].conv2.stride = (1, 1)
    for block, rate in ((reference.layer3[0], 2), (reference.layer4[0], 4)):
        block.conv2.dilation = (rate, rate)
        block.conv2.padding = (rate, rate)
    ours = DeepLabV2ResNet(SHALLOW).eval()
    ours.load_state_dict(_imagenet_state(reference), strict=True)
    x = torch.randn(2, 3, 37, 45)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference.forward_features(x))


def test_frozen_batchnorm_keeps_running_stats_and_affine_fixed() -> None:
    backbone = DeepLabV2ResNet((1, 1, 1, 1))  # freeze_bn=True by default
    backbone.train()
    assert backbone.training and backbone.layer1.training
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.training for m in bns)
    assert all(not p.requires_grad for m in bns for p in m.parameters())
    before = copy.deepcopy(backbone.state_dict())
    backbone(torch.randn(2, 3, 32, 32)).sum().backward()
    for key, value in backbone.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)
    assert backbone.conv1.weight.grad is not None
    assert backbone.eval() is backbone and not backbone.training


def test_unfrozen_batchnorm_trains_normally() -> None:
    backbone = DeepLabV2ResNet((1, 1, 1, 1), freeze_bn=False).train()
    assert backbone.bn1.training and backbone.bn1.weight.requires_grad
    mean_before = backbone.bn1.running_mean.clone()
    backbone(torch.randn(2, 3, 32, 32))
    assert not torch.equal(backbone.bn1.running_mean, mean_before)


def test_pretrained_loads_torchvision_imagenet_weights_through_timm(
    monkeypatch, resnet101_backbone
) -> None:
    # No network in tests: stand in for timm's download with a model of the right keys.
    template = resnet101_backbone.state_dict()
    gen = torch.Generator().manual_seed(0)
    fake_state = {k: torch.rand(v.shape, generator=gen).to(v.dtype) for k, v in template.items()}
    fake_state |= {"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    calls = []

    class FakeImageNetModel(nn.Module):
        def state_dict(self, *args, **kwargs):  # type: ignore[override]
            return fake_state

    def fake_create_model(name, pretrained=False, **kwargs):
        calls.append((name, pretrained))
        return FakeImageNetModel()

    monkeypatch.setattr(deeplabv2_module.timm, "create_model", fake_create_model)
    backbone = deeplabv2_resnet101(pretrained=True)
    assert calls == [("resnet101.tv_in1k", True)]
    torch.testing.assert_close(
        backbone.layer4[2].bn3.running_var, fake_state["layer4.2.bn3.running_var"], rtol=0, atol=0
    )


def test_wrong_channels_and_bad_layers_are_refused() -> None:
    with pytest.raises(ValueError, match="expects 3 input channels, got 1"):
        _tiny_backbone()(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="four positive block counts"):
        DeepLabV2ResNet((3, 4, 23))
