"""TimmEncoder and load_weights: shapes against timm itself, strides, errors, checkpoints."""

from __future__ import annotations

import math
from functools import cache

import pytest
import timm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from s4seg.models import TimmEncoder
from s4seg.models.encoder import load_weights


@cache
def _encoder(output_stride: int) -> TimmEncoder:
    torch.manual_seed(0)
    return TimmEncoder("test_resnet", output_stride=output_stride).eval()


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_convnext"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_matches_timm_features_only_and_reports_its_shape(name: str, output_stride: int) -> None:
    encoder = TimmEncoder(name, output_stride=output_stride).eval()
    # Plain reference: timm's own features_only model with the same weights.
    reference = timm.create_model(name, features_only=True, output_stride=output_stride).eval()
    reference.load_state_dict(encoder.model.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = encoder(x)
        expected = reference(x)[-1]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert encoder.reduction == output_stride
    assert out.shape == (2, encoder.out_channels, 64 // output_stride, 64 // output_stride)


@settings(max_examples=15, deadline=None)
@given(
    h=st.integers(16, 72),
    w=st.integers(16, 72),
    output_stride=st.sampled_from([8, 16]),
)
def test_resnet_feature_size_is_ceil_of_input_over_stride(
    h: int, w: int, output_stride: int
) -> None:
    encoder = _encoder(output_stride)
    with torch.no_grad():
        out = encoder(torch.randn(1, 3, h, w))
    assert out.shape[-2:] == (math.ceil(h / output_stride), math.ceil(w / output_stride))


@pytest.mark.parametrize("bad", [4, 12, 64])
def test_unsupported_output_stride_is_refused_with_the_choices(bad: int) -> None:
    with pytest.raises(ValueError, match=rf"output_stride={bad}.*\(8, 16, 32\)"):
        TimmEncoder("test_resnet", output_stride=bad)


def test_model_without_dilation_works_at_its_native_stride_only() -> None:
    vit = TimmEncoder("test_vit", output_stride=16)
    assert vit.reduction == 16
    assert vit(torch.randn(1, 3, 32, 32)).shape[-2:] == (2, 2)
    with pytest.raises(ValueError, match=r"does not support output_stride=8.*stride 16"):
        TimmEncoder("test_vit", output_stride=8)


def test_none_kwargs_are_dropped_and_others_reach_timm() -> None:
    encoder = TimmEncoder("test_resnet", drop_rate=None, in_chans=1)
    assert encoder.in_channels == 1
    assert encoder.model.conv1[0].in_channels == 1
    assert encoder(torch.randn(1, 1, 32, 32)).ndim == 4


def test_wrong_channel_count_names_expected_and_got() -> None:
    with pytest.raises(ValueError, match="expects 3 input channels, got 4"):
        _encoder(16)(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="3-d tensor"):
        _encoder(16)(torch.randn(3, 32, 32))


class _ChannelsLast(nn.Module):
    """Stands in for a timm backbone (Swin, MaxViT) whose feature maps are NHWC."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [f.permute(0, 2, 3, 1) for f in self.inner(x)]


def test_channels_last_backbones_are_returned_channels_first() -> None:
    encoder = TimmEncoder("test_resnet").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = encoder(x)
        encoder.model = _ChannelsLast(encoder.model)
        encoder.channels_last_output = True
        out = encoder(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("wrap", ["bare", "model", "state_dict", "ddp"])
def test_checkpoint_path_loads_a_saved_state_dict(tmp_path, wrap: str) -> None:
    torch.manual_seed(1)
    saved = TimmEncoder("test_resnet")
    state = saved.state_dict()
    obj = {
        "bare": state,
        "model": {"model": state, "step": 3},
        "state_dict": {"state_dict": state, "epoch": 1},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    path = tmp_path / "encoder.pth"
    torch.save(obj, path)
    torch.manual_seed(2)
    loaded = TimmEncoder("test_resnet", checkpoint_path=path)
    _assert_same_weights(saved, loaded)


def test_missing_checkpoint_file_names_the_path(tmp_path) -> None:
    path = tmp_path / "nope" / "weights.pth"
    with pytest.raises(FileNotFoundError, match=r"weights\.pth"):
        TimmEncoder("test_resnet", checkpoint_path=path)


def test_checkpoint_of_another_model_lists_missing_and_unexpected_keys(tmp_path) -> None:
    path = tmp_path / "effnet.pth"
    torch.save(TimmEncoder("test_efficientnet").state_dict(), path)
    with pytest.raises(ValueError, match=r"missing keys \[model\.conv1.*unexpected keys \[model\."):
        TimmEncoder("test_resnet", checkpoint_path=path)


def test_checkpoint_with_other_shapes_lists_the_mismatch(tmp_path) -> None:
    path = tmp_path / "one_channel.pth"
    torch.save(TimmEncoder("test_resnet", in_chans=1).state_dict(), path)
    with pytest.raises(ValueError, match=r"1 shape mismatches \[model\.conv1\.0\.weight"):
        TimmEncoder("test_resnet", checkpoint_path=path)


def test_file_without_a_state_dict_is_refused(tmp_path) -> None:
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not a state_dict"):
        load_weights(nn.Linear(2, 2), path)


def test_offline_pretrained_weights_load_through_timm(tmp_path) -> None:
    # The documented offline route: a classification checkpoint on disk, read by timm.
    torch.manual_seed(3)
    classifier = timm.create_model("test_resnet")
    path = tmp_path / "imagenet.pth"
    torch.save(classifier.state_dict(), path)
    encoder = TimmEncoder(
        "test_resnet", pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    )
    torch.testing.assert_close(
        encoder.model.layer4[0].conv1.weight, classifier.layer4[0].conv1.weight, rtol=0, atol=0
    )


@pytest.mark.parametrize(
    ("name", "stride"),
    [("vit_tiny_patch16_224", 16), ("swin_tiny_patch4_window7_224", 32),
     ("vit_small_patch14_dinov2", 14)],
)  # fmt: skip
def test_transformers_take_images_of_any_size(name: str, stride: int) -> None:
    from s4seg.models import create_generator

    torch.manual_seed(0)
    g = create_generator(name, 4)  # output_stride None: their native stride
    assert g.encoder.reduction == stride
    for size in [(61, 75), (33, 47)]:
        assert g(torch.randn(2, 3, *size)).shape == (2, 4, *size)


def test_an_explicit_stride_a_transformer_cannot_have_is_refused() -> None:
    with pytest.raises(ValueError, match=r"stride 32\. Pass output_stride=None"):
        TimmEncoder("swin_tiny_patch4_window7_224", output_stride=16)
