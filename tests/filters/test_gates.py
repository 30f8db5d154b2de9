"""Tests for s4seg.filters: what each filter keeps, in images and in pixels."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.filters import (
    AndFilter,
    DiscriminatorGate,
    FilterDecision,
    PixelConfidenceFilter,
    PseudoLabelFilter,
    filter_stats,
)
from s4seg.ops import confidence_masked_cross_entropy
from s4seg.schedules import Linear, Step

fast = settings(max_examples=25, deadline=None)


def two_class_logits(p: list[list[float]]) -> torch.Tensor:
    """(B, 2, 1, W) logits whose class-0 softmax probability is p[b][w] (p in (0, 1))."""
    t = torch.tensor(p, dtype=torch.float64)
    # softmax([log p, log(1-p)]) = [p, 1-p]
    return torch.stack([t.log(), (1 - t).log()], dim=1).unsqueeze(2).float()


# --- hand-computed decisions --------------------------------------------------------


def test_gate_keeps_images_strictly_above_threshold() -> None:
    logits = torch.zeros(4, 3, 2, 2)
    gate = DiscriminatorGate(0.2)
    d = gate.decide(logits=logits, image_scores=torch.tensor([0.5, 0.2, 0.19, 0.9]), step=0)
    # 0.2 is not > 0.2: the original S4GAN code used a strict comparison.
    assert d.image_keep.tolist() == [True, False, False, True]
    assert d.pixel_threshold.item() == 0.0
    assert d.pixel_threshold.dim() == 0
    assert d.image_threshold == 0.2
    assert torch.equal(d.image_scores, torch.tensor([0.5, 0.2, 0.19, 0.9]))


def test_gate_keeps_every_pixel_of_a_kept_image() -> None:
    # Very unsure pixels (confidence 1/3 with 3 equal logits) are still kept by the gate.
    logits = torch.zeros(2, 3, 4, 5)
    d = DiscriminatorGate(0.5).decide(logits=logits, image_scores=torch.tensor([0.6, 0.4]), step=0)
    stats = filter_stats(d, logits)
    assert stats.images_kept.item() == 1
    assert stats.images_total.item() == 2
    assert stats.pixels_kept.item() == 20
    assert stats.pixels_total.item() == 40


def test_pixel_filter_keeps_confident_pixels_of_all_images() -> None:
    # Confidences: image 0 -> 0.95, 0.6; image 1 -> 0.9 (kept, >=), 0.3 (max prob 0.7).
    logits = two_class_logits([[0.95, 0.6], [0.9, 0.3]])
    f = PixelConfidenceFilter(0.9)
    d = f.decide(logits=logits, step=0)
    assert d.image_keep.tolist() == [True, True]
    assert d.pixel_threshold.item() == pytest.approx(0.9)
    assert d.image_scores is None and d.image_threshold is None
    stats = filter_stats(d, logits)
    assert stats.pixels_kept.item() == 2
    assert stats.images_kept.item() == 2
    assert stats.pixels_total.item() == 4


def test_pixel_filter_threshold_equal_to_confidence_is_kept() -> None:
    logits = torch.zeros(1, 2, 1, 3)  # confidence exactly 0.5 everywhere
    d = PixelConfidenceFilter(0.5).decide(logits=logits, step=0)
    assert filter_stats(d, logits).pixels_kept.item() == 3


def test_and_filter_combines() -> None:
    logits = two_class_logits([[0.95, 0.6], [0.9, 0.3], [0.99, 0.99]])
    d_prob = torch.tensor([0.8, 0.1, 0.3])
    f = AndFilter(DiscriminatorGate(0.2), PixelConfidenceFilter(0.9))
    d = f.decide(logits=logits, image_scores=d_prob, step=0)
    assert d.image_keep.tolist() == [True, False, True]
    assert d.pixel_threshold.item() == pytest.approx(0.9)  # max(0, 0.9)
    assert d.image_threshold == 0.2
    assert torch.equal(d.image_scores, d_prob)
    stats = filter_stats(d, logits)
    # image 0: 1 confident pixel; image 1 rejected by the gate; image 2: both.
    assert (stats.images_kept.item(), stats.pixels_kept.item()) == (2, 3)


def test_and_filter_keyword_parts_are_the_same_filter() -> None:
    # The keyword form is what a config file can fill (it cannot fill *filters).
    gate, pix = DiscriminatorGate(0.2), PixelConfidenceFilter(0.9)
    assert AndFilter(parts=[gate, pix]).filters == AndFilter(gate, pix).filters == (gate, pix)
    assert AndFilter(gate, parts=[pix]).filters == (gate, pix)
    with pytest.raises(ValueError, match="at least one"):
        AndFilter(parts=[])


def test_scheduled_thresholds() -> None:
    logits = torch.zeros(3, 2, 1, 1)
    d_prob = torch.tensor([0.1, 0.15, 0.3])
    gate = DiscriminatorGate(Linear(0.2, 0.05, steps=100))
    assert gate.decide(logits=logits, image_scores=d_prob, step=0).image_keep.tolist() == [
        False,
        False,
        True,
    ]
    # step 50: threshold 0.125
    d = gate.decide(logits=logits, image_scores=d_prob, step=50)
    assert d.image_threshold == pytest.approx(0.125)
    assert d.image_keep.tolist() == [False, True, True]
    pix = PixelConfidenceFilter(Step({0: 0.95, 10: 0.5}))
    assert filter_stats(pix.decide(logits=logits, step=0), logits).pixels_kept == 0
    assert filter_stats(pix.decide(logits=logits, step=10), logits).pixels_kept == 3


def test_decision_gives_same_counts_as_self_training_op() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, generator=g) * 3
    d = AndFilter(DiscriminatorGate(0.4), PixelConfidenceFilter(0.7)).decide(
        logits=logits, image_scores=torch.tensor([0.5, 0.3, 0.9]), step=0
    )
    _, op_stats = confidence_masked_cross_entropy(
        logits, d.pixel_threshold, image_keep=d.image_keep, backend="reference"
    )
    stats = filter_stats(d, logits)
    for name in ("images_kept", "images_total", "pixels_kept", "pixels_total"):
        assert torch.equal(getattr(stats, name), getattr(op_stats, name)), name


def test_filter_stats_uses_teacher() -> None:
    student = torch.zeros(1, 2, 1, 2)  # confidence 0.5
    teacher = two_class_logits([[0.99, 0.6]])
    d = PixelConfidenceFilter(0.9).decide(logits=student, step=0)
    assert filter_stats(d, student).pixels_kept.item() == 0
    assert filter_stats(d, student, teacher_logits=teacher).pixels_kept.item() == 1


# --- what each filter says it thresholds --------------------------------------------


def test_thresholds_text_and_repr() -> None:
    gate = DiscriminatorGate(0.2)
    pix = PixelConfidenceFilter(0.9)
    both = AndFilter(gate, pix)
    assert gate.thresholds.startswith("image:")
    assert "D(fake) probability" in gate.thresholds and "0.2" in gate.thresholds
    assert pix.thresholds.startswith("pixel:")
    assert "max softmax probability" in pix.thresholds and ">= 0.9" in pix.thresholds
    assert "image:" in both.thresholds and "pixel:" in both.thresholds and "AND" in both.thresholds
    assert repr(gate) == "DiscriminatorGate(threshold=0.2)"
    assert repr(pix) == "PixelConfidenceFilter(threshold=0.9)"
    assert repr(both) == (
        "AndFilter(DiscriminatorGate(threshold=0.2), PixelConfidenceFilter(threshold=0.9))"
    )
    sched = DiscriminatorGate(Linear(0.2, 0.05, 25_000))
    assert repr(sched) == (
        "DiscriminatorGate(threshold=Linear(start=0.2, end=0.05, steps=25000, delay=0))"
    )
    for f in (gate, pix, both):
        assert isinstance(f, PseudoLabelFilter)


# --- bad input ----------------------------------------------------------------------


def test_gate_needs_d_prob() -> None:
    with pytest.raises(ValueError, match="needs discriminator probabilities"):
        DiscriminatorGate().decide(logits=torch.zeros(2, 3, 4, 4), step=0)
    with pytest.raises(ValueError, match="needs discriminator probabilities"):
        AndFilter(DiscriminatorGate(), PixelConfidenceFilter()).decide(
            logits=torch.zeros(2, 3, 4, 4), step=0
        )


def test_gate_validates_d_prob() -> None:
    gate = DiscriminatorGate()
    logits = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"shape \(B,\)=\(2,\).*\(2, 1\).*reshape"):
        gate.decide(logits=logits, image_scores=torch.full((2, 1), 0.5), step=0)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        gate.decide(logits=logits, image_scores=torch.full((3,), 0.5), step=0)
    with pytest.raises(ValueError, match="sigmoid"):
        gate.decide(logits=logits, image_scores=torch.tensor([-2.0, 3.0]), step=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        gate.decide(logits=logits, image_scores=torch.tensor([float("nan"), 0.5]), step=0)
    with pytest.raises(TypeError, match="float"):
        gate.decide(logits=logits, image_scores=torch.tensor([0, 1]), step=0)
    # The check can be switched off (no host sync); then out-of-range scores just gate.
    loose = DiscriminatorGate(0.2, check_range=False)
    d = loose.decide(logits=logits, image_scores=torch.tensor([-2.0, 3.0]), step=0)
    assert d.image_keep.tolist() == [False, True]


@pytest.mark.parametrize("cls", [DiscriminatorGate, PixelConfidenceFilter])
@pytest.mark.parametrize("bad", [1.5, -0.1, 20, float("nan")])
def test_threshold_outside_unit_interval(cls, bad) -> None:
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        cls(bad)


def test_schedule_going_out_of_range_is_caught_at_decide() -> None:
    f = PixelConfidenceFilter(lambda step: 0.5 + step)  # a custom callable schedule
    logits = torch.zeros(1, 2, 1, 1)
    assert f.decide(logits=logits, step=0).pixel_threshold.item() == 0.5
    with pytest.raises(ValueError, match=r"step 1 is 1\.5"):
        f.decide(logits=logits, step=1)


def test_other_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        AndFilter()
    with pytest.raises(TypeError, match="decide"):
        AndFilter(0.2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        PixelConfidenceFilter().decide(logits=torch.zeros(2, 3), step=0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        PixelConfidenceFilter().decide(logits=torch.zeros(1, 2, 1, 1), step=-1)
    d = PixelConfidenceFilter().decide(logits=torch.zeros(2, 2, 1, 1), step=0)
    with pytest.raises(ValueError, match="B=3"):
        filter_stats(d, torch.zeros(3, 2, 1, 1))
    with pytest.raises(ValueError, match="bool"):
        FilterDecision(image_keep=torch.ones(2), pixel_threshold=torch.tensor(0.5))


# --- properties ---------------------------------------------------------------------


@st.composite
def batches(draw):
    b = draw(st.integers(1, 4))
    c = draw(st.integers(2, 4))
    h = draw(st.integers(1, 4))
    w = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    scale = draw(st.floats(0.1, 5.0))
    logits = torch.randn(b, c, h, w, generator=g) * scale
    d_prob = torch.rand(b, generator=g)
    return logits, d_prob


unit = st.floats(0.0, 1.0, allow_nan=False)


def _counts(f, logits, d_prob) -> tuple[int, int, torch.Tensor]:
    d = f.decide(logits=logits, image_scores=d_prob, step=0)
    s = filter_stats(d, logits)
    return int(s.images_kept), int(s.pixels_kept), d.image_keep


@fast
@given(batches(), unit, unit, unit, unit)
def test_raising_a_threshold_never_keeps_more(batch, a, b, c, e) -> None:
    logits, d_prob = batch
    lo_g, hi_g = sorted((a, b))
    lo_p, hi_p = sorted((c, e))
    pairs = [
        (DiscriminatorGate(lo_g), DiscriminatorGate(hi_g)),
        (PixelConfidenceFilter(lo_p), PixelConfidenceFilter(hi_p)),
        (
            AndFilter(DiscriminatorGate(lo_g), PixelConfidenceFilter(lo_p)),
            AndFilter(DiscriminatorGate(hi_g), PixelConfidenceFilter(hi_p)),
        ),
    ]
    for low, high in pairs:
        img_lo, px_lo, keep_lo = _counts(low, logits, d_prob)
        img_hi, px_hi, keep_hi = _counts(high, logits, d_prob)
        assert img_hi <= img_lo
        assert px_hi <= px_lo
        assert not (keep_hi & ~keep_lo).any()  # a subset, not only fewer


@fast
@given(batches(), unit, unit)
def test_counts_agree(batch, tg, tp) -> None:
    logits, d_prob = batch
    b, _, h, w = logits.shape
    gate, pix = DiscriminatorGate(tg), PixelConfidenceFilter(tp)
    both = AndFilter(gate, pix)
    results = {}
    for name, f in (("gate", gate), ("pix", pix), ("and", both)):
        img, px, keep = _counts(f, logits, d_prob)
        results[name] = (img, px)
        assert 0 <= img <= b
        assert px <= img * h * w
        assert (px > 0) == (img > 0)
        assert img <= int(keep.sum())  # images with a kept pixel are among the allowed ones
    # The gate keeps whole images: its pixel count is exactly kept images x H x W.
    assert results["gate"][1] == results["gate"][0] * h * w
    assert results["gate"][0] == int((d_prob > tg).sum())
    for part in ("gate", "pix"):
        assert results["and"][0] <= results[part][0]
        assert results["and"][1] <= results[part][1]


@fast
@given(batches(), unit)
def test_pixel_filter_counts_match_naive_softmax(batch, t) -> None:
    logits, _ = batch
    d = PixelConfidenceFilter(t).decide(logits=logits, step=0)
    conf = torch.softmax(logits.double(), dim=1).amax(dim=1)
    naive = int((conf >= t).sum())
    got = int(filter_stats(d, logits).pixels_kept)
    # The op's float32 confidence can sit 1 ulp away from float64: allow pixels at the edge.
    edge = int(((conf - t).abs() < 1e-6).sum())
    assert abs(got - naive) <= edge
    assert not math.isnan(float(filter_stats(d, logits).pixel_fraction))
