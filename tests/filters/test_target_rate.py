"""TargetRateGate and TargetRateFilter: a fixed share of each batch by rank; cannot starve or flood."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_trainer
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.callbacks import Callback
from s4seg.filters import (
    AndFilter,
    PixelConfidenceFilter,
    TargetRateFilter,
    TargetRateGate,
    filter_stats,
)
from s4seg.filters.target_rate import kept_count
from s4seg.schedules import Linear

fast = settings(max_examples=25, deadline=None)


def distinct_scores(b: int, seed: int = 0) -> torch.Tensor:
    return torch.randperm(b, generator=torch.Generator().manual_seed(seed)).float() / b


# --- hand-computed cases -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "n", "k"),
    [(0.5, 4, 2), (0.3, 10, 3), (0.25, 4, 1), (0.26, 4, 2), (0.01, 4, 1), (0.0, 4, 0), (1.0, 4, 4)],
)
def test_kept_count(rate, n, k):
    # ceil(rate * n), at least 1 when rate > 0; 0.3 * 10 is 3.0000000000000004 in floats.
    assert kept_count(rate, n) == k


def test_image_gate_keeps_the_top_images_by_d_score():
    gate = TargetRateGate(0.5)
    d = gate.decide(
        logits=torch.zeros(4, 3, 2, 2), image_scores=torch.tensor([0.1, 0.9, 0.5, 0.3]), step=0
    )
    assert d.image_keep.tolist() == [False, True, True, False]
    assert float(d.image_threshold) == pytest.approx(0.5)  # the lowest kept score
    assert float(d.pixel_threshold) == 0.0  # every pixel of a kept image, as S4GAN
    assert torch.equal(d.image_scores, torch.tensor([0.1, 0.9, 0.5, 0.3]))


def test_a_discriminator_that_rejects_everything_cannot_starve_it():
    # Scores all near 0: a 0.2 threshold keeps nothing, the rank still keeps ceil(q*B).
    d_prob = torch.tensor([1e-4, 3e-4, 2e-4, 5e-5])
    d = TargetRateGate(0.25).decide(logits=torch.zeros(4, 2, 1, 1), image_scores=d_prob, step=0)
    assert d.image_keep.tolist() == [False, True, False, False]
    # ... nor can one that accepts everything flood it.
    d = TargetRateGate(0.5).decide(logits=torch.zeros(4, 2, 1, 1), image_scores=1 - d_prob, step=0)
    assert d.image_keep.tolist() == [True, False, False, True]


def two_class_logits(p: list[list[float]]) -> torch.Tensor:
    """(B, 2, 1, W) logits whose class-0 probability is p[b][w]."""
    t = torch.tensor(p, dtype=torch.float64)
    return torch.stack([t.log(), (1 - t).log()], dim=1).unsqueeze(2).float()


def test_pixel_gate_keeps_the_most_confident_pixels_of_the_batch():
    # Confidences max(p, 1-p): 0.9, 0.6 | 0.55, 0.8 -> top half: 0.9 and 0.8.
    logits = two_class_logits([[0.9, 0.4], [0.55, 0.2]])
    d = TargetRateFilter(0.5).decide(logits=logits, step=0)
    assert d.image_keep.tolist() == [True, True]
    assert float(d.pixel_threshold) == pytest.approx(0.8, abs=1e-6)
    stats = filter_stats(d, logits)
    assert int(stats.pixels_kept) == 2 and int(stats.images_kept) == 2


def test_rate_zero_keeps_nothing_and_one_keeps_everything():
    logits = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    for kind in (TargetRateGate, TargetRateFilter):
        gate0, gate1 = kind(0.0), kind(1.0)
        d_prob = torch.rand(3)
        none = filter_stats(gate0.decide(logits=logits, image_scores=d_prob, step=0), logits)
        every = filter_stats(gate1.decide(logits=logits, image_scores=d_prob, step=0), logits)
        assert int(none.pixels_kept) == 0
        assert int(every.pixels_kept) == 3 * 25


def test_scheduled_rate():
    gate = TargetRateGate(Linear(0.25, 0.75, steps=10))
    d_prob = distinct_scores(4)
    logits = torch.zeros(4, 2, 1, 1)
    assert int(gate.decide(logits=logits, image_scores=d_prob, step=0).image_keep.sum()) == 1
    assert int(gate.decide(logits=logits, image_scores=d_prob, step=10).image_keep.sum()) == 3


def test_combines_with_a_pixel_filter():
    logits = two_class_logits([[0.95, 0.6], [0.97, 0.99]])
    both = AndFilter(TargetRateGate(0.5), PixelConfidenceFilter(0.9))
    d = both.decide(logits=logits, image_scores=torch.tensor([0.8, 0.1]), step=0)
    assert d.image_keep.tolist() == [True, False]
    assert float(d.image_threshold) == pytest.approx(0.8)
    assert int(filter_stats(d, logits).pixels_kept) == 1  # 0.95 of image 0 only


def test_says_what_it_ranks_and_reprs():
    assert "top 0.5 fraction of each batch by discriminator D(fake)" in TargetRateGate().thresholds
    assert "by max softmax probability" in TargetRateFilter(0.2).thresholds
    assert repr(TargetRateFilter(0.2)) == "TargetRateFilter(rate=0.2)"
    assert repr(TargetRateGate(0.3)) == "TargetRateGate(rate=0.3)"


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\].*got 20.0"):
        TargetRateGate(20)
    with pytest.raises(ValueError, match=r"TargetRateFilter rate must be in \[0, 1\]"):
        TargetRateFilter(-0.1)
    with pytest.raises(ValueError, match="TargetRateFilter to rank pixels"):
        TargetRateGate(0.5).decide(logits=torch.zeros(2, 2, 1, 1), step=0)
    with pytest.raises(ValueError, match=r"shape \(B,\)=\(2,\)"):
        TargetRateGate(0.5).decide(
            logits=torch.zeros(2, 2, 1, 1), image_scores=torch.ones(2, 1), step=0
        )


# --- against a plain reference -----------------------------------------------------------


def test_pixel_cut_off_matches_a_sort():
    logits = torch.randn(2, 5, 7, 3, generator=torch.Generator().manual_seed(1))
    conf = logits.softmax(1).amax(1).flatten().sort(descending=True).values
    for rate in (0.1, 0.33, 0.5, 0.9):
        k = math.ceil(rate * conf.numel())
        d = TargetRateFilter(rate).decide(logits=logits, step=0)
        assert float(d.pixel_threshold) == pytest.approx(float(conf[k - 1]), abs=1e-6)
        assert int(filter_stats(d, logits).pixels_kept) == k


# --- properties ---------------------------------------------------------------------------


@fast
@given(b=st.integers(1, 16), q=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_keeps_exactly_ceil_q_b_images_never_zero_when_q_positive(b, q, seed):
    d = TargetRateGate(q).decide(
        logits=torch.zeros(b, 2, 1, 1),
        image_scores=torch.rand(b, generator=torch.Generator().manual_seed(seed)),
        step=0,
    )
    kept = int(d.image_keep.sum())
    assert kept == min(b, max(math.ceil(round(q * b, 9)), 1 if q > 0 else 0))
    assert (kept > 0) == (q > 0)


@fast
@given(
    b=st.integers(1, 16), q1=st.floats(0.0, 1.0), q2=st.floats(0.0, 1.0), seed=st.integers(0, 99)
)
def test_monotone_in_the_rate(b, q1, q2, seed):
    lo, hi = sorted((q1, q2))
    d_prob = distinct_scores(b, seed)
    logits = torch.zeros(b, 2, 1, 1)
    keep_lo = TargetRateGate(lo).decide(logits=logits, image_scores=d_prob, step=0).image_keep
    keep_hi = TargetRateGate(hi).decide(logits=logits, image_scores=d_prob, step=0).image_keep
    assert bool((keep_lo <= keep_hi).all())  # what a lower rate keeps, a higher one keeps too


@fast
@given(q=st.floats(0.01, 1.0), seed=st.integers(0, 99))
def test_pixel_gate_keeps_at_least_its_share(q, seed):
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    d = TargetRateFilter(q).decide(logits=logits, step=0)
    assert int(filter_stats(d, logits).pixels_kept) >= kept_count(q, 32)


# --- in the trainer -----------------------------------------------------------------------


class Logs(Callback):
    def __init__(self) -> None:
        self.records: list[dict] = []

    def on_log(self, trainer, record):
        self.records.append(record)


def test_in_the_trainer_it_keeps_one_image_of_two_per_step():
    logs = Logs()
    make_trainer([logs], pseudo_filter=TargetRateGate(0.5)).fit()
    # Windows of 2 steps x 2 images; step 0 has no self-training.
    assert [r["st_images_kept"] for r in logs.records] == [1, 2, 2]
    assert [r["gate_images_passed"] for r in logs.records] == [1, 2, 2]
    assert all(0.0 <= r["gate_threshold"] <= 1.0 for r in logs.records)
