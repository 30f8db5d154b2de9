"""Tests for s4seg.losses.FeatureMatchingLoss."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.losses import FeatureMatchingLoss

fast = settings(max_examples=25, deadline=None)


def test_hand_computed() -> None:
    # real batch mean: (2, 1, 0); fake batch mean (batch of 1): (0, 1, 3).
    # |diff| = (2, 0, 3), mean over the 3 features = 5/3.
    real = torch.tensor([[1.0, 0.0, 0.0], [3.0, 2.0, 0.0]])
    fake = torch.tensor([[0.0, 1.0, 3.0]])
    assert FeatureMatchingLoss()(real, fake).item() == pytest.approx(5 / 3)


def test_zero_when_means_match_even_if_samples_differ() -> None:
    real = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    fake = torch.zeros(3, 2)
    assert FeatureMatchingLoss()(real, fake).item() == 0.0


def test_gradient_hand_computed() -> None:
    # d/d fake[i, k] of mean_k |r_k - mean_i f_ik| = -sign(r_k - f_k) / (D * B').
    real = torch.tensor([[1.0, 0.0]])
    fake = torch.tensor([[0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    FeatureMatchingLoss()(real, fake).backward()
    expected = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]) / 4
    torch.testing.assert_close(fake.grad, expected)


def test_bad_shapes() -> None:
    loss = FeatureMatchingLoss()
    with pytest.raises(ValueError, match=r"real_features must be \(B, D\).*\(2, 3, 4\)"):
        loss(torch.zeros(2, 3, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"fake_features.*B >= 1"):
        loss(torch.zeros(2, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="512 vs 256"):
        loss(torch.zeros(2, 512), torch.zeros(2, 256))


@fast
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 16), st.integers(0, 2**31 - 1))
def test_matches_reference(b_real, b_fake, d, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(b_real, d, generator=g, dtype=torch.float64)
    fake = torch.randn(b_fake, d, generator=g, dtype=torch.float64)
    # Plain loops, written independently of the vectorised module.
    total = 0.0
    for k in range(d):
        mr = sum(real[i, k].item() for i in range(b_real)) / b_real
        mf = sum(fake[i, k].item() for i in range(b_fake)) / b_fake
        total += abs(mr - mf)
    loss = FeatureMatchingLoss()(real, fake)
    assert loss.item() == pytest.approx(total / d, rel=1e-9, abs=1e-12)
    # Properties: symmetric, non-negative, zero against itself, shift moves it by |shift|.
    assert FeatureMatchingLoss()(fake, real).item() == pytest.approx(loss.item())
    assert loss.item() >= 0
    assert FeatureMatchingLoss()(real, real).item() == 0.0
    assert FeatureMatchingLoss()(real, real + 0.5).item() == pytest.approx(0.5)
