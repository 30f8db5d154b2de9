"""ASPP (DeepLabV2 head): hand-computed sums, F.conv2d reference, affine property."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.models import ASPP


def test_one_pixel_input_sums_the_centre_taps_of_all_four_branches() -> None:
    # On a 1x1 map every tap but the centre reads zero padding, so branch i gives
    # w_i * v + b_i. Weights 1, 2, 3, 4, biases 0.5 each, v = 2:
    # 2 * (1 + 2 + 3 + 4) + 4 * 0.5 = 22. Summing only two branches would give 7.
    head = ASPP(1, 1)
    with torch.no_grad():
        for i, conv in enumerate(head.conv2d_list):
            conv.weight.fill_(i + 1)
            conv.bias.fill_(0.5)
    out = head(torch.full((1, 1, 1, 1), 2.0))
    assert out.item() == 22.0


def test_single_rate_one_box_filter_counts_neighbours() -> None:
    # Dilation 1, all-ones 3x3 kernel, ones input: each output counts its in-image neighbours.
    head = ASPP(1, 1, dilations=(1,))
    with torch.no_grad():
        head.conv2d_list[0].weight.fill_(1.0)
        head.conv2d_list[0].bias.zero_()
    out = head(torch.ones(1, 1, 3, 3))
    expected = torch.tensor([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]])
    torch.testing.assert_close(out[0, 0], expected, rtol=0, atol=0)


@pytest.mark.parametrize("size", [(13, 11), (41, 41), (5, 30)])
def test_matches_a_sum_of_plain_dilated_convolutions(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    head = ASPP(8, 3)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    head = head.double()
    expected = sum(
        F.conv2d(x, conv.weight, conv.bias, padding=d, dilation=d)
        for conv, d in zip(head.conv2d_list, (6, 12, 18, 24), strict=True)
    )
    torch.testing.assert_close(head(x), expected)


@settings(max_examples=20, deadline=None)
@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    dilations=st.lists(st.integers(1, 24), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_keeps_the_size_and_is_affine(h: int, w: int, dilations: list[int], seed: int) -> None:
    torch.manual_seed(seed)
    head = ASPP(3, 2, dilations=dilations).double()
    x, y = torch.randn(2, 1, 3, h, w, dtype=torch.float64)
    with torch.no_grad():
        fx, fy, f0 = head(x), head(y), head(torch.zeros_like(x))
        fxy = head(x + y)
    assert fx.shape == (1, 2, h, w)
    # A sum of convolutions is affine: f(x + y) = f(x) + f(y) - f(0).
    torch.testing.assert_close(fxy, fx + fy - f0)


def test_weights_start_small_as_in_deeplabv2() -> None:
    torch.manual_seed(0)
    head = ASPP(2048, 21)
    std = torch.cat([c.weight.flatten() for c in head.conv2d_list]).std().item()
    assert 0.0095 < std < 0.0105


def test_wrong_feature_channels_name_the_fix() -> None:
    with pytest.raises(ValueError, match=r"in_channels=8.*got shape \(1, 4, 5, 5\)"):
        ASPP(8, 3)(torch.randn(1, 4, 5, 5))


@pytest.mark.parametrize("dilations", [(), (0, 6), (1.5,)])
def test_bad_dilations_are_refused(dilations: tuple) -> None:
    with pytest.raises(ValueError, match="dilations="):
        ASPP(8, 3, dilations=dilations)


# ----------------------------------------------------------------- DeepLabV3+
def _cbr(x, seq, *, training: bool, dilation: int = 1):
    """conv, batch norm, ReLU written out with torch.nn.functional."""
    conv, bn = seq[0], seq[1]
    pad = dilation * (conv.kernel_size[0] // 2)
    y = F.conv2d(x, conv.weight, None, padding=pad, dilation=dilation)
    y = F.batch_norm(
        y, bn.running_mean.clone(), bn.running_var.clone(), bn.weight, bn.bias,
        training=training, eps=bn.eps,
    )  # fmt: skip
    return F.relu(y)


def _v3plus_by_hand(head, high, low, *, training: bool):
    h, w = high.shape[-2:]
    branches = [_cbr(high, head.aspp.branches[0], training=training)]
    for seq, d in zip(head.aspp.branches[1:], head.aspp.dilations, strict=True):
        branches.append(_cbr(high, seq, training=training, dilation=d))
    pooled = _cbr(high.mean(dim=(2, 3), keepdim=True), head.aspp.pooling[1:], training=training)
    branches.append(pooled.expand(-1, -1, h, w))  # bilinear from 1x1 is a constant map
    deep = _cbr(torch.cat(branches, 1), head.aspp.project, training=training)
    deep = F.interpolate(deep, size=low.shape[-2:], mode="bilinear", align_corners=False)
    x = torch.cat([_cbr(low, head.reduce, training=training), deep], 1)
    x = _cbr(_cbr(x, head.fuse[0], training=training), head.fuse[1], training=training)
    return F.conv2d(x, head.classifier.weight, head.classifier.bias)


@pytest.mark.parametrize("training", [True, False])
def test_deeplabv3plus_head_matches_a_functional_write_out(training: bool) -> None:
    from s4seg.models import DeepLabV3PlusHead

    torch.manual_seed(0)
    head = DeepLabV3PlusHead(16, 8, 3, aspp_channels=4, low_level_out=5, decoder_channels=6,
                             dilations=(1, 2, 3)).double()  # fmt: skip
    for m in head.modules():  # non-trivial running statistics for eval mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    head.train(training)
    high = torch.randn(2, 16, 3, 5, dtype=torch.float64)
    low = torch.randn(2, 8, 11, 17, dtype=torch.float64)
    expected = _v3plus_by_hand(head, high, low, training=training)
    torch.testing.assert_close(head(high, low), expected)
    assert expected.shape == (2, 3, 11, 17)


def test_deeplabv3plus_head_checks_its_inputs() -> None:
    from s4seg.models import DeepLabV3PlusHead

    head = DeepLabV3PlusHead(16, 8, 3)
    with pytest.raises(ValueError, match="in_channels=16"):
        head(torch.randn(1, 15, 4, 4), torch.randn(1, 8, 8, 8))
    with pytest.raises(ValueError, match="stride-4 feature map"):
        head(torch.randn(1, 16, 4, 4), torch.randn(1, 7, 8, 8))
    with pytest.raises(ValueError, match="decoder_channels"):
        DeepLabV3PlusHead(16, 8, 3, decoder_channels=0)
