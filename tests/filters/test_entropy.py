"""EntropyPercentileFilter (U2PL): drops the highest-entropy pixels, ranked on the device."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.filters import EntropyPercentileFilter, PseudoLabelFilter, filter_stats
from s4seg.filters.entropy import dropped_count, pixel_entropy
from s4seg.schedules import Linear

fast = settings(max_examples=25, deadline=None)


def random_logits(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Continuous float64 logits: distinct entropies (no ties) almost surely."""
    gen = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(*shape, generator=gen, dtype=torch.float64)


def numpy_entropy(logits: torch.Tensor) -> np.ndarray:
    x = logits.double().numpy()
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return -(p * np.log(p)).sum(axis=1)


def keep(f: EntropyPercentileFilter, logits: torch.Tensor, step: int = 0) -> torch.Tensor:
    return f.decide(logits=logits, step=step).pixel_keep


# --- hand-computed cases -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "n", "dropped"),
    [(0.2, 10, 2), (0.25, 10, 2), (0.7, 10, 7), (0.29, 100, 29), (0.0, 5, 0), (1.0, 5, 5)],
)
def test_dropped_count(drop, n, dropped):
    # floor(drop * n); 0.7 * 10 and 0.29 * 100 are 7.000000000000001 and 28.999999999999996.
    assert dropped_count(drop, n) == dropped


def test_drops_the_most_uncertain_pixel():
    # Two classes: p = 0.5 has the most entropy (log 2), then 0.7, 0.9, 0.99.
    p = torch.tensor([[0.9, 0.5], [0.99, 0.7]], dtype=torch.float64)
    logits = torch.stack([p.log(), (1 - p).log()]).unsqueeze(0)  # (1, 2, 2, 2)
    assert pixel_entropy(logits)[0, 0, 1] == pytest.approx(math.log(2.0))
    d = EntropyPercentileFilter(0.25).decide(logits=logits, step=0)
    assert d.pixel_keep.tolist() == [[[True, False], [True, True]]]
    assert d.image_keep.tolist() == [True] and float(d.pixel_threshold) == 0.0
    assert keep(EntropyPercentileFilter(0.5), logits).tolist() == [[[True, False], [True, False]]]
    assert int(filter_stats(d, logits).pixels_kept) == 3


def test_entropy_matches_numpy():
    logits = random_logits((2, 5, 3, 4), seed=0)
    np.testing.assert_allclose(pixel_entropy(logits).numpy(), numpy_entropy(logits), rtol=1e-12)
    assert pixel_entropy(logits.half()).dtype == torch.float32
    # Large logits: probabilities underflow to 0 without a NaN.
    assert torch.isfinite(pixel_entropy(torch.tensor([[[[1e4]], [[-1e4]]]]))).all()


def test_zero_keeps_all_and_one_keeps_none():
    logits = random_logits((2, 3, 4, 4), seed=1)
    assert keep(EntropyPercentileFilter(0.0), logits).all()
    assert not keep(EntropyPercentileFilter(1.0), logits).any()


def test_ties_at_the_cut_off_are_all_kept():
    # Equal logits: every pixel has entropy log C, so the cut-off ties with all of them.
    assert keep(EntropyPercentileFilter(0.5), torch.zeros(1, 3, 2, 2)).all()


def test_u2pl_schedule_and_bad_values():
    f = EntropyPercentileFilter.u2pl(steps=100)
    assert f.drop == Linear(0.2, 0.0, steps=100)
    assert f.drop_at(0) == pytest.approx(0.2) and f.drop_at(50) == pytest.approx(0.1)
    logits = random_logits((1, 3, 5, 4), seed=2)
    assert int(keep(f, logits, step=0).sum()) == 16
    assert int(keep(f, logits, step=100).sum()) == 20
    with pytest.raises(ValueError, match=r"not a percentage: 20% is 0.2\), got 20.0"):
        EntropyPercentileFilter(20)
    with pytest.raises(ValueError, match=r"drop at step 7 is 20.0, outside \[0, 1\]"):
        EntropyPercentileFilter(lambda step: 20.0).decide(logits=logits, step=7)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        EntropyPercentileFilter(0.2).decide(logits=torch.zeros(3, 4, 4), step=0)


def test_says_what_it_drops_and_reprs():
    f = EntropyPercentileFilter(0.2)
    assert isinstance(f, PseudoLabelFilter)
    assert f.thresholds.startswith(
        "pixel: drops the 20.0% highest-entropy pixels of the batch (entropy of the softmax"
    )
    assert "in nats" in f.thresholds
    assert (
        "Linear(start=0.2, end=0.0, steps=10, delay=0)"
        in EntropyPercentileFilter.u2pl(10).thresholds
    )
    assert repr(f) == "EntropyPercentileFilter(drop=0.2)"


# --- against plain references --------------------------------------------------------------


@pytest.mark.parametrize("drop", [0.05, 0.2, 0.37, 0.5, 0.9])
def test_keeps_exactly_the_lowest_entropy_pixels(drop):
    logits = random_logits((2, 4, 5, 7), seed=3)
    ent = numpy_entropy(logits).reshape(-1)
    n = ent.size
    k = n - math.floor(drop * n + 1e-9)
    expected = np.zeros(n, dtype=bool)
    expected[np.argsort(ent)[:k]] = True
    got = keep(EntropyPercentileFilter(drop), logits).reshape(-1).numpy()
    assert got.sum() == k
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("drop", [0.0, 0.05, 0.2, 0.5, 0.8])
def test_keeps_what_u2pls_numpy_percentile_keeps_or_one_more(drop):
    # U2PL's rule: drop entropy >= np.percentile(entropy, 100 * (1 - drop)).
    logits = random_logits((2, 3, 6, 5), seed=4)
    ent = numpy_entropy(logits)
    u2pl = ent < np.percentile(ent.reshape(-1), 100 * (1 - drop))
    ours = keep(EntropyPercentileFilter(drop), logits).numpy()
    assert 0 <= int(ours.sum()) - int(u2pl.sum()) <= 1
    assert not (u2pl & ~ours).any()  # everything U2PL keeps is kept


# --- properties ---------------------------------------------------------------------------


@fast
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 6), st.integers(1, 6)),
    a1=st.floats(0.0, 1.0),
    a2=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
)
def test_kept_count_is_n_minus_floor_alpha_n_and_monotone(shape, a1, a2, seed):
    logits = random_logits(shape, seed)
    n = shape[0] * shape[2] * shape[3]
    lo, hi = min(a1, a2), max(a1, a2)
    keep_lo = keep(EntropyPercentileFilter(lo), logits)
    keep_hi = keep(EntropyPercentileFilter(hi), logits)
    assert int(keep_lo.sum()) == n - dropped_count(lo, n)
    assert abs(int(keep_lo.sum()) / n - (1 - lo)) < 1 / n + 1e-12
    assert not (keep_hi & ~keep_lo).any()  # dropping more never keeps more
    # Every kept pixel is at most as uncertain as every dropped one.
    ent = pixel_entropy(logits)
    if keep_lo.any() and (~keep_lo).any():
        assert ent[keep_lo].max() < ent[~keep_lo].min()


def test_a_masked_class_adds_nothing_as_in_u2pl() -> None:
    # A class masked out with a -inf logit has probability exactly 0; 0 log 0 is 0, so
    # the entropy is that of the other classes (U2PL's p * log(p + eps) stays finite too).
    logits = torch.tensor([[[[0.0]], [[0.0]], [[-math.inf]]]])  # (1, 3, 1, 1)
    ent = pixel_entropy(logits)
    assert torch.isfinite(ent).all()
    assert float(ent) == pytest.approx(math.log(2.0))
    d = EntropyPercentileFilter(0.5).decide(logits=logits.expand(2, 3, 2, 2).contiguous(), step=0)
    assert d.pixel_keep.any()  # the filter still keeps pixels
