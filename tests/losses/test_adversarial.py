"""PixelAdversarialLoss / masked_bce_with_logits against F.binary_cross_entropy_with_logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.losses.adversarial import PixelAdversarialLoss, masked_bce_with_logits

fast = settings(max_examples=25, deadline=None)


def reference(logits: torch.Tensor, target: float, valid: torch.Tensor) -> torch.Tensor:
    """Plain BCE on the valid subset only."""
    sub = logits[valid]
    return F.binary_cross_entropy_with_logits(sub, torch.full_like(sub, target))


def test_hand_computed() -> None:
    # logits (0, log 3, 9, -9); target 1: -log(1/2), -log(3/4); pixels 3 and 4 ignored.
    logits = torch.tensor([[[0.0, math.log(3.0)], [9.0, -9.0]]])
    labels = torch.tensor([[[1, 0], [255, 255]]])
    expected = (math.log(2.0) - math.log(0.75)) / 2
    assert float(PixelAdversarialLoss()(logits, 1.0, labels)) == pytest.approx(expected)
    # Target 0: -log(1/2), -log(1/4).
    expected = (math.log(2.0) + math.log(4.0)) / 2
    assert float(PixelAdversarialLoss()(logits, 0.0, labels)) == pytest.approx(expected)
    # No mask: every pixel, a fresh discriminator (logit 0) gives log 2.
    assert float(PixelAdversarialLoss()(torch.zeros(2, 3, 3), 1.0)) == pytest.approx(math.log(2))


def test_custom_ignore_index() -> None:
    logits = torch.tensor([[[0.0, 5.0]]])
    loss = PixelAdversarialLoss(ignore_index=-1)(logits, 0.0, torch.tensor([[[3, -1]]]))
    assert float(loss) == pytest.approx(math.log(2.0))
    assert "ignore_index=-1" in repr(PixelAdversarialLoss(ignore_index=-1))


def test_nothing_valid_gives_zero_and_a_zero_gradient() -> None:
    logits = torch.randn(2, 4, 4, requires_grad=True)
    loss = PixelAdversarialLoss()(logits, 1.0, torch.full((2, 4, 4), 255))
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    # An empty batch too.
    assert float(masked_bce_with_logits(torch.zeros(0, 4, 4), 1.0)) == 0.0


def test_ignored_infinite_logits_do_not_leak() -> None:
    # BCE(+inf, target 0) is inf; a multiply by the mask would give inf * 0 = NaN.
    logits = torch.tensor([[[0.0, float("inf")]]], requires_grad=True)
    loss = PixelAdversarialLoss()(logits, 0.0, torch.tensor([[[0, 255]]]))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(math.log(2.0))
    assert torch.isfinite(logits.grad).all() and float(logits.grad[0, 0, 1]) == 0.0


def test_gradient_matches_the_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 5, 6), generator=gen)
    labels[labels == 2] = 255
    ours = torch.autograd.grad(PixelAdversarialLoss()(logits, 0.0, labels), logits)[0]
    ref = torch.autograd.grad(reference(logits, 0.0, labels != 255), logits)[0]
    torch.testing.assert_close(ours, ref)


def test_discriminator_loss_as_the_caller_writes_it() -> None:
    # adv(real, 1) + adv(fake, 0): a perfect discriminator scores ~0, a fresh one 2 log 2.
    adv = PixelAdversarialLoss()
    labels = torch.zeros(1, 3, 3, dtype=torch.long)
    perfect = adv(torch.full((1, 3, 3), 30.0), 1.0, labels) + adv(
        torch.full((1, 3, 3), -30.0), 0.0, labels
    )
    assert float(perfect) == pytest.approx(0.0, abs=1e-12)
    fresh = adv(torch.zeros(1, 3, 3), 1.0, labels) + adv(torch.zeros(1, 3, 3), 0.0, labels)
    assert float(fresh) == pytest.approx(2 * math.log(2.0))


def test_bad_input_is_named() -> None:
    adv = PixelAdversarialLoss()
    with pytest.raises(ValueError, match=r"target must be in \[0, 1\].*got 2.0"):
        adv(torch.zeros(1, 2, 2), 2.0)
    with pytest.raises(TypeError, match="target must be a float"):
        adv(torch.zeros(1, 2, 2), True)
    with pytest.raises(TypeError, match="masked_bce_with_logits"):
        adv(torch.zeros(1, 2, 2), 1.0, torch.ones(1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask has shape \(1, 4, 4\).*\(1, 2, 2\)"):
        adv(torch.zeros(1, 2, 2), 1.0, torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="valid must be a bool tensor"):
        masked_bce_with_logits(torch.zeros(1, 2, 2), 1.0, torch.ones(1, 2, 2))
    with pytest.raises(TypeError, match="logits must be a float tensor"):
        masked_bce_with_logits(torch.zeros(1, 2, 2, dtype=torch.long), 1.0)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        PixelAdversarialLoss(ignore_index=2.5)  # type: ignore[arg-type]


@fast
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
    target=st.sampled_from([0.0, 1.0, 0.9]),
    scale=st.floats(0.1, 30.0),
    seed=st.integers(0, 10_000),
)
def test_equals_the_reference_on_the_valid_pixels_and_is_nonnegative(
    shape, target, scale, seed
) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, shape, generator=gen)
    labels[labels == 2] = 255
    loss = PixelAdversarialLoss()(logits, target, labels)
    assert float(loss) >= 0.0
    valid = labels != 255
    if valid.any():
        torch.testing.assert_close(loss, reference(logits, target, valid))
    else:
        assert float(loss) == 0.0
    # Without a mask it is the plain mean over every pixel.
    torch.testing.assert_close(
        masked_bce_with_logits(logits, target),
        F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target)),
    )
