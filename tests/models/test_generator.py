"""SegmentationGenerator and create_generator: upsampling, factory, checkpoints, errors."""

from __future__ import annotations

from functools import cache

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from s4seg.models import ASPP, DeepLabV2ResNet, SegmentationGenerator, TimmEncoder, create_generator


@cache
def _generator() -> SegmentationGenerator:
    torch.manual_seed(0)
    return create_generator("test_resnet", 4).eval()


@pytest.fixture(scope="module")
def preset() -> SegmentationGenerator:
    # freeze_bn=None is dropped like any None kwarg, so the preset's default (True) holds.
    return create_generator("deeplabv2_resnet101", 21, freeze_bn=None)


class _FixedMap(nn.Module):
    """An encoder stand-in that returns the same 1x2 map [[0, 1]] for any input."""

    in_channels = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[[[0.0, 1.0]]]]).expand(x.shape[0], 1, 1, 2)


def test_logits_are_upsampled_bilinearly_half_pixel_aligned() -> None:
    # align_corners=False maps output pixel j to input coordinate (j + 0.5) / 2 - 0.5:
    # -0.25, 0.25, 0.75, 1.25 -> clamped and interpolated 0, 0.25, 0.75, 1.
    generator = SegmentationGenerator(_FixedMap(), nn.Identity(), num_classes=1)
    out = generator(torch.zeros(2, 3, 1, 4))
    expected = torch.tensor([0.0, 0.25, 0.75, 1.0]).expand(2, 1, 1, 4)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_forward_is_encoder_head_upsample() -> None:
    generator = _generator()
    x = torch.randn(2, 3, 45, 37)
    with torch.no_grad():
        expected = F.interpolate(
            generator.head(generator.encoder(x)),
            size=(45, 37),
            mode="bilinear",
            align_corners=False,
        )
        torch.testing.assert_close(generator(x), expected, rtol=0, atol=0)


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 2), h=st.integers(8, 70), w=st.integers(8, 70))
def test_logits_have_the_input_size(b: int, h: int, w: int) -> None:
    with torch.no_grad():
        out = _generator()(torch.randn(b, 3, h, w))
    assert out.shape == (b, 4, h, w)


@pytest.mark.parametrize("name", ["test_efficientnet", "test_convnext", "resnet18"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_timm_backbones_at_stride_8_and_16(name: str, output_stride: int) -> None:
    generator = create_generator(name, 3, output_stride=output_stride).eval()
    assert isinstance(generator.encoder, TimmEncoder) and isinstance(generator.head, ASPP)
    assert generator.encoder.reduction == output_stride
    assert generator.head.in_channels == generator.encoder.out_channels
    with torch.no_grad():
        assert generator(torch.randn(1, 3, 32, 48)).shape == (1, 3, 32, 48)


def test_default_output_stride_is_16_for_timm_and_8_for_the_preset(preset) -> None:
    assert _generator().encoder.reduction == 16
    assert isinstance(preset.encoder, DeepLabV2ResNet) and preset.encoder.reduction == 8
    assert preset.encoder.freeze_bn
    assert preset.head.dilations == (6, 12, 18, 24) and preset.num_classes == 21
    with pytest.raises(ValueError, match=r"output stride 8 by construction.*output_stride=16"):
        create_generator("deeplabv2_resnet101", 21, output_stride=16)


@pytest.mark.parametrize("which", ["timm", "preset"])
def test_backbone_and_head_parameters_partition_all_parameters(which: str, preset) -> None:
    generator = _generator() if which == "timm" else preset
    backbone = [id(p) for p in generator.backbone_parameters()]
    head = [id(p) for p in generator.head_parameters()]
    everything = [id(p) for p in generator.parameters()]
    assert len(backbone) + len(head) == len(everything)
    assert set(backbone).isdisjoint(head)
    assert set(backbone) | set(head) == set(everything)
    assert head and backbone


def test_predict_runs_in_eval_mode_without_autograd_and_restores_the_mode() -> None:
    torch.manual_seed(0)
    generator = create_generator("test_resnet", 3, drop_rate=0.5).train()
    x = torch.randn(2, 3, 32, 32)
    out = generator.predict(x)
    assert generator.training
    assert out.is_inference() and not out.requires_grad
    generator.eval()
    with torch.no_grad():
        torch.testing.assert_close(out, generator(x), rtol=0, atol=0)


def test_wrong_channel_count_names_expected_and_got() -> None:
    with pytest.raises(ValueError, match="SegmentationGenerator expects 3 input channels, got 1"):
        _generator()(torch.randn(1, 1, 32, 32))
    generator = create_generator("test_resnet", 2, in_chans=1)
    assert generator(torch.randn(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"'resnet1O1' \(close matches: resnet101"):
        create_generator("resnet1O1", 3)
    with pytest.raises(ValueError, match=r"close matches: deeplabv2_resnet101"):
        create_generator("deeplabv2_resnet", 3)
    with pytest.raises(ValueError, match=r"no close match.*deeplabv2_resnet101"):
        create_generator("qqqqqqqqqqqqqqqqqqqq", 3)


def test_tagged_timm_names_and_none_kwargs_are_accepted() -> None:
    generator = create_generator("test_resnet.r160_in1k", 3, drop_rate=None, in_chans=None)
    assert generator.encoder.in_channels == 3


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_num_classes_must_be_a_positive_int(num_classes) -> None:
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        create_generator("test_resnet", num_classes)


def test_head_with_another_class_count_is_refused() -> None:
    with pytest.raises(ValueError, match="num_classes=5 but the head predicts 3"):
        SegmentationGenerator(nn.Identity(), ASPP(8, 3), num_classes=5)


@pytest.mark.parametrize("wrap", ["bare", "model", "state_dict"])
def test_checkpoint_path_restores_a_saved_generator(tmp_path, wrap: str) -> None:
    torch.manual_seed(1)
    saved = create_generator("test_resnet", 3).eval()
    state = saved.state_dict()
    obj = {
        "bare": state,
        "model": {"model": state, "step": 10},
        "state_dict": {"state_dict": state},
    }
    path = tmp_path / "generator.pth"
    torch.save(obj[wrap], path)
    torch.manual_seed(2)
    loaded = create_generator("test_resnet", 3, checkpoint_path=path).eval()
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), saved(x), rtol=0, atol=0)


def test_checkpoint_errors_name_the_path_and_the_keys(tmp_path) -> None:
    missing = tmp_path / "missing.pth"
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        create_generator("test_resnet", 3, checkpoint_path=missing)
    three = tmp_path / "three_classes.pth"
    torch.save(create_generator("test_resnet", 3).state_dict(), three)
    with pytest.raises(
        ValueError,
        match=r"shape mismatches \[head\.conv2d_list\.0\.bias: file \(3,\) vs model \(5,\)",
    ):
        create_generator("test_resnet", 5, checkpoint_path=three)
    with pytest.raises(ValueError, match=r"missing keys \[encoder\..*unexpected keys \[encoder\."):
        create_generator("test_efficientnet", 3, checkpoint_path=three)


def test_deeplabv3plus_generator_fuses_the_stride_4_map() -> None:
    from s4seg.models import DeepLabV3PlusHead

    g = create_generator("test_resnet", 5, output_stride=8, head="deeplabv3plus")
    assert isinstance(g.head, DeepLabV3PlusHead)
    assert g.encoder.feature_reductions[g.low_level_index] == 4
    assert g.head.aspp.dilations == (12, 24, 36)  # DeepLabV3's rates, doubled at stride 8
    x = torch.randn(2, 3, 37, 45)
    assert g(x).shape == (2, 5, 37, 45)
    g.eval()
    stages = g.encoder.forward_features(x)
    by_hand = g.head(stages[-1], stages[g.low_level_index])
    by_hand = torch.nn.functional.interpolate(by_hand, size=(37, 45), mode="bilinear")
    torch.testing.assert_close(g(x), by_hand)


def test_feature_dropout_decodes_clean_and_perturbed_features_together() -> None:
    torch.manual_seed(0)
    g = create_generator("test_resnet", 4, output_stride=8, head="deeplabv3plus").eval()
    x = torch.randn(2, 3, 32, 32)
    clean, same = g(x, feature_dropout=0.0)
    torch.testing.assert_close(clean, same)
    torch.testing.assert_close(clean, g(x))  # eval mode: BN statistics do not mix them
    clean, perturbed = g(x, feature_dropout=0.5)
    assert clean.shape == perturbed.shape == (2, 4, 32, 32)
    assert not torch.allclose(clean, perturbed)
    with pytest.raises(ValueError, match="feature_dropout"):
        g(x, feature_dropout=1.0)


def test_head_choice_is_checked_and_presets_keep_theirs() -> None:
    with pytest.raises(ValueError, match="head must be one of"):
        create_generator("test_resnet", 3, head="unet")
    with pytest.raises(ValueError, match="has its own head"):
        create_generator("deeplabv2_resnet101", 3, head="deeplabv3plus")


def test_unimatch_network_preset_is_resnet101_deeplabv3plus_at_stride_16() -> None:
    from s4seg.models import DeepLabV3PlusHead

    g = create_generator("deeplabv3plus_resnet101", 21)
    assert g.encoder.name == "resnet101" and g.encoder.reduction == 16
    assert isinstance(g.head, DeepLabV3PlusHead) and g.head.aspp.dilations == (6, 12, 18)
    assert g.head.aspp.out_channels == 256  # 2048 // 8, as in UniMatch
    assert g(torch.randn(2, 3, 33, 33)).shape == (2, 21, 33, 33)  # pooling BN needs B > 1


def test_head_kwargs_size_the_head() -> None:
    g = create_generator(
        "test_efficientnet", 6, output_stride=8, head="deeplabv3plus",
        head_kwargs={"decoder_channels": 64, "aspp_channels": 32},
    )  # fmt: skip
    assert g.head.classifier.in_channels == 64 and g.head.aspp.out_channels == 32
    assert g(torch.randn(2, 3, 48, 48)).shape == (2, 6, 48, 48)
    v2 = create_generator("test_resnet", 3, head_kwargs={"dilations": (1, 2)})
    assert v2.head.dilations == (1, 2)
    with pytest.raises(ValueError, match="head_kwargs unset"):
        create_generator("deeplabv2_resnet101", 3, head_kwargs={"dilations": (1,)})
