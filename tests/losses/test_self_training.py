"""Tests for s4seg.losses.SelfTrainingLoss (with the filters that feed it)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.filters import AndFilter, DiscriminatorGate, PixelConfidenceFilter, filter_stats
from s4seg.losses import SelfTrainingLoss

fast = settings(max_examples=25, deadline=None)


def batch() -> torch.Tensor:
    """(2, 2, 1, 2) logits. Image 0: pixel a p=(3/4, 1/4), pixel b p=(1/2, 1/2).
    Image 1: pixel c p=(1/10, 9/10), pixel d p=(1/2, 1/2)."""
    la = [math.log(3.0), 0.0]
    lb = [0.0, 0.0]
    lc = [0.0, math.log(9.0)]
    return torch.tensor([[la, lb], [lc, lb]]).permute(0, 2, 1).unsqueeze(2).contiguous()


def test_gate_hand_computed() -> None:
    logits = batch().requires_grad_()
    gate = DiscriminatorGate(0.5)
    d = gate.decide(logits=logits, image_scores=torch.tensor([0.7, 0.3]), step=0)
    loss, stats = SelfTrainingLoss()(logits, d)
    # Image 0 kept, every pixel: a -> class 0, CE -log(3/4); b -> tie, class 0, CE log 2.
    assert loss.item() == pytest.approx((-math.log(0.75) + math.log(2.0)) / 2, rel=1e-6)
    assert stats.images_kept.item() == 1 and stats.images_total.item() == 2
    assert stats.pixels_kept.item() == 2 and stats.pixels_total.item() == 4
    loss.backward()
    # Rejected image: no gradient. Pixel a: (softmax - onehot)/2 = (-1/4, 1/4)/2.
    assert torch.equal(logits.grad[1], torch.zeros_like(logits.grad[1]))
    torch.testing.assert_close(logits.grad[0, :, 0, 0], torch.tensor([-0.125, 0.125]))


def test_and_filter_hand_computed_and_normalizations() -> None:
    logits = batch()
    d = AndFilter(DiscriminatorGate(0.2), PixelConfidenceFilter(0.6)).decide(
        logits=logits, image_scores=torch.tensor([0.7, 0.3]), step=0
    )
    # Both images pass the gate; confident pixels: a (0.75) and c (0.9).
    ce_a, ce_c = -math.log(0.75), -math.log(0.9)
    for normalize, denom in (("selected", 2), ("valid", 4), ("all", 4)):
        loss, stats = SelfTrainingLoss(normalize=normalize)(logits, d)
        assert loss.item() == pytest.approx((ce_a + ce_c) / denom, rel=1e-6), normalize
        assert (stats.images_kept.item(), stats.pixels_kept.item()) == (2, 2)


def test_nothing_kept_is_zero_without_nan() -> None:
    logits = torch.randn(3, 4, 2, 2, requires_grad=True)
    d = DiscriminatorGate(0.9).decide(logits=logits, image_scores=torch.full((3,), 0.1), step=0)
    loss, stats = SelfTrainingLoss()(logits, d)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))
    assert stats.images_kept.item() == 0 and stats.pixels_kept.item() == 0


def test_teacher_gives_targets_and_student_gets_gradient() -> None:
    student = torch.zeros(1, 2, 1, 2, requires_grad=True)
    teacher = torch.tensor([[[[5.0, -5.0]], [[0.0, 0.0]]]], requires_grad=True)
    d = PixelConfidenceFilter(0.9).decide(logits=student, step=0)
    loss, stats = SelfTrainingLoss()(student, d, teacher_logits=teacher)
    # Teacher pixel 0: p0 = sigmoid(5) > 0.9, class 0; pixel 1: p1 = sigmoid(5), class 1.
    assert stats.pixels_kept.item() == 2
    assert loss.item() == pytest.approx(math.log(2.0), rel=1e-6)
    loss.backward()
    assert teacher.grad is None
    assert student.grad.abs().sum() > 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"normalize.*'mean'"):
        SelfTrainingLoss(normalize="mean")
    with pytest.raises(ValueError, match=r"backend.*'cuda'"):
        SelfTrainingLoss(backend="cuda")
    with pytest.raises(TypeError, match="FilterDecision"):
        SelfTrainingLoss()(torch.zeros(1, 2, 1, 1), torch.tensor(0.5))  # type: ignore[arg-type]
    r = repr(SelfTrainingLoss())
    assert "normalize='selected'" in r and "backend='auto'" in r


def reference(logits: torch.Tensor, keep: torch.Tensor, t: float) -> tuple[torch.Tensor, int]:
    """S4GAN written out by hand: argmax targets on confident pixels of kept images,
    mean cross-entropy over those pixels, 0 when there are none."""
    probs = torch.softmax(logits.detach().double(), dim=1)
    conf, target = probs.max(dim=1)
    mask = (conf >= t) & keep.view(-1, 1, 1)
    if not mask.any():
        return logits.sum() * 0, 0
    ce = F.cross_entropy(logits, target, reduction="none")
    return ce[mask].mean(), int(mask.sum())


@fast
@given(
    st.integers(1, 4),
    st.integers(2, 5),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 2**31 - 1),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_matches_reference(b, c, h, w, seed, tg, tp) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, c, h, w, generator=g, dtype=torch.float64) * 3).requires_grad_()
    d_prob = torch.rand(b, generator=g)
    # Keep away from the threshold so float32/float64 confidence rounding cannot flip a pixel.
    conf = torch.softmax(logits.detach(), dim=1).amax(dim=1)
    if ((conf - tp).abs() < 1e-5).any():
        tp = min(tp + 2e-5, 1.0) if tp < 0.5 else tp - 2e-5
    f = AndFilter(DiscriminatorGate(tg), PixelConfidenceFilter(tp))
    d = f.decide(logits=logits, image_scores=d_prob, step=0)
    loss, stats = SelfTrainingLoss()(logits, d)
    ref_logits = logits.detach().clone().requires_grad_()
    ref, n = reference(ref_logits, d_prob > tg, tp)
    assert stats.pixels_kept.item() == n
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, rtol=1e-4, atol=1e-6)
    # Property: the loss reports the same counts as filter_stats, and is finite, >= 0.
    s2 = filter_stats(d, logits)
    assert stats.pixels_kept.item() == s2.pixels_kept.item()
    assert stats.images_kept.item() == s2.images_kept.item()
    assert math.isfinite(loss.item()) and loss.item() >= 0
