"""Tests for s4seg.losses.DiscriminatorLoss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.losses import DiscriminatorLoss

fast = settings(max_examples=25, deadline=None)


def test_fresh_discriminator_gives_log2() -> None:
    # Logit 0 -> probability 1/2 for both halves: each BCE is log 2, so Loss_D = log 2
    # = 0.693, the iteration-0 value of the field report.
    loss = DiscriminatorLoss()(torch.zeros(4), torch.zeros(4))
    assert loss.item() == pytest.approx(math.log(2.0))


def test_hand_computed() -> None:
    # real logit log 3 -> p = 3/4, target 1: -log(3/4).
    # fake logits (0, log 3): targets 0: -log(1/2), -log(1/4); mean = (log 2 + log 4)/2.
    real = torch.tensor([math.log(3.0)])
    fake = torch.tensor([0.0, math.log(3.0)])
    expected = (-math.log(0.75) + (math.log(2.0) + math.log(4.0)) / 2) / 2
    assert DiscriminatorLoss()(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_one_sided_smoothing_hand_computed() -> None:
    # s = 0.1: real target 0.9; real logit 0 -> -(0.9 log 1/2 + 0.1 log 1/2) = log 2 still;
    # real logit log 3 -> -(0.9 log 3/4 + 0.1 log 1/4). Fake target stays 0.
    real = torch.tensor([math.log(3.0)])
    fake = torch.tensor([math.log(3.0)])
    expected = (-(0.9 * math.log(0.75) + 0.1 * math.log(0.25)) + math.log(4.0)) / 2
    assert DiscriminatorLoss(0.1)(real, fake).item() == pytest.approx(expected, rel=1e-6)
    # Smoothing changes only the real half.
    d0 = DiscriminatorLoss(0.0)(torch.tensor([5.0]), fake) - DiscriminatorLoss(0.0)(
        torch.tensor([5.0]), torch.tensor([-5.0])
    )
    d1 = DiscriminatorLoss(0.3)(torch.tensor([5.0]), fake) - DiscriminatorLoss(0.3)(
        torch.tensor([5.0]), torch.tensor([-5.0])
    )
    assert d0.item() == pytest.approx(d1.item(), rel=1e-6)


def test_stable_for_large_logits() -> None:
    loss = DiscriminatorLoss()(torch.tensor([100.0]), torch.tensor([-100.0]))
    assert loss.item() == pytest.approx(0.0, abs=1e-30)
    loss = DiscriminatorLoss()(torch.tensor([-100.0]), torch.tensor([100.0]))
    assert loss.item() == pytest.approx(100.0)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan")])
def test_bad_smoothing(bad) -> None:
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        DiscriminatorLoss(bad)


def test_bad_inputs() -> None:
    with pytest.raises(TypeError):
        DiscriminatorLoss("0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"real_logits.*non-empty"):
        DiscriminatorLoss()(torch.zeros(0), torch.zeros(2))
    with pytest.raises(ValueError, match=r"fake_logits.*float"):
        DiscriminatorLoss()(torch.zeros(2), torch.zeros(2, dtype=torch.long))
    assert repr(DiscriminatorLoss(0.1)) == "DiscriminatorLoss(label_smoothing=0.1)"


@fast
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.floats(0.0, 0.99),
    st.integers(0, 2**31 - 1),
)
def test_matches_reference(b_real, b_fake, s, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    real = (torch.randn(b_real, generator=g, dtype=torch.float64) * 4).requires_grad_()
    fake = (torch.randn(b_fake, generator=g, dtype=torch.float64) * 4).requires_grad_()
    loss = DiscriminatorLoss(s)(real, fake)
    # Reference: BCE(x, t) = softplus(x) - t*x, written from the definition.
    r, f = real.detach().clone().requires_grad_(), fake.detach().clone().requires_grad_()
    ref = ((F.softplus(r) - (1 - s) * r).mean() + F.softplus(f).mean()) / 2
    torch.testing.assert_close(loss, ref)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(real.grad, r.grad)
    torch.testing.assert_close(fake.grad, f.grad)
    # Property: the loss is at least the entropy floor of the smoothed real target.
    floor = 0.0 if s == 0 else -(s * math.log(s) + (1 - s) * math.log(1 - s)) / 2
    assert loss.item() >= floor - 1e-12
