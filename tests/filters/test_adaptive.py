"""SelfAdaptiveThreshold (FreeMatch): hand-computed update, reference loop, range, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_trainer
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.filters import SelfAdaptiveThreshold, filter_stats
from s4seg.training.checkpoint import read_checkpoint, save_atomic

fast = settings(max_examples=20, deadline=None)


def prob_logits(p: list[list[float]]) -> torch.Tensor:
    """(1, C, 1, W) logits whose softmax at pixel w is p[w]."""
    return torch.tensor(p, dtype=torch.float64).log().T.reshape(1, len(p[0]), 1, len(p)).float()


def test_one_update_by_hand():
    # Pixels p = (0.8, 0.2) and (0.6, 0.4); momentum 0.5; start tau = p_c = 1/2.
    # tau: 0.5 * 0.5 + 0.5 * mean(0.8, 0.6) = 0.6
    # p_c: 0.5 * 0.5 + 0.5 * mean -> (0.6, 0.4); tau_c = 0.6 * p_c / 0.6 = (0.6, 0.4).
    f = SelfAdaptiveThreshold(2, momentum=0.5)
    d = f.decide(logits=prob_logits([[0.8, 0.2], [0.6, 0.4]]), step=1)
    assert d.pixel_threshold.tolist() == pytest.approx([0.6, 0.4], abs=1e-6)
    assert d.image_keep.tolist() == [True]
    g = SelfAdaptiveThreshold(2, momentum=0.5, classwise=False)
    d = g.decide(logits=prob_logits([[0.8, 0.2], [0.6, 0.4]]), step=1)
    assert d.pixel_threshold.dim() == 0 and float(d.pixel_threshold) == pytest.approx(0.6)
    # Pixel 0 (class 0, confidence 0.8) passes 0.6; pixel 1 (0.6 >= 0.6) too.
    assert int(filter_stats(d, prob_logits([[0.8, 0.2], [0.6, 0.4]])).pixels_kept) == 2


def reference(batches, num_classes, momentum, classwise):
    """FreeMatch's self-adaptive thresholds, written out in float64 numpy."""
    tau, p = 1.0 / num_classes, np.full(num_classes, 1.0 / num_classes)
    out = []
    for logits in batches:
        x = logits.double().numpy()
        e = np.exp(x - x.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        tau = momentum * tau + (1 - momentum) * probs.max(axis=1).mean()
        p = momentum * p + (1 - momentum) * probs.mean(axis=(0, 2, 3))
        out.append(tau * p / p.max() if classwise else tau)
    return out


@pytest.mark.parametrize("classwise", [True, False])
def test_matches_the_reference_over_several_batches(classwise):
    gen = torch.Generator().manual_seed(0)
    batches = [3 * torch.randn(2, 4, 5, 3, generator=gen) for _ in range(6)]
    f = SelfAdaptiveThreshold(4, momentum=0.7, classwise=classwise)
    got = [f.decide(logits=b, step=i).pixel_threshold.numpy() for i, b in enumerate(batches)]
    for a, b in zip(got, reference(batches, 4, 0.7, classwise), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@fast
@given(
    c=st.integers(2, 6),
    momentum=st.floats(0.0, 0.999),
    scale=st.floats(0.0, 50.0),
    seed=st.integers(0, 99),
)
def test_thresholds_stay_in_unit_interval(c, momentum, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    f = SelfAdaptiveThreshold(c, momentum=momentum)
    for step in range(4):
        t = f.decide(logits=scale * torch.randn(3, c, 2, 2, generator=gen), step=step)
        assert bool(((t.pixel_threshold >= 0) & (t.pixel_threshold <= 1)).all())


def test_state_dict_round_trip_and_mismatch():
    f = SelfAdaptiveThreshold(3, momentum=0.5)
    f.decide(logits=torch.randn(2, 3, 4, 4), step=1)
    g = SelfAdaptiveThreshold(3, momentum=0.5)
    g.load_state_dict(f.state_dict())
    assert all(torch.is_tensor(v) for v in f.state_dict().values())
    assert torch.equal(g.threshold(), f.threshold())
    with pytest.raises(ValueError, match="another num_classes"):
        SelfAdaptiveThreshold(4).load_state_dict(f.state_dict())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        SelfAdaptiveThreshold(3, momentum=1.0)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        SelfAdaptiveThreshold(1)
    with pytest.raises(ValueError, match="num_classes=5"):
        SelfAdaptiveThreshold(3).decide(logits=torch.zeros(2, 5, 1, 1), step=0)


def test_resumed_run_with_the_filter_is_bit_identical(tmp_path):
    def fresh():
        return SelfAdaptiveThreshold(6, momentum=0.5)

    straight = make_trainer(max_steps=6, pseudo_filter=fresh())
    straight.fit()
    first = make_trainer(max_steps=6, pseudo_filter=fresh())
    first.fit(until=3)
    state = read_checkpoint(save_atomic(first.state_dict(), tmp_path / "c.pt"))
    assert set(state["method"]["self_training"]["filter"]) == {"global_threshold", "class_probs"}
    second = make_trainer(max_steps=6, seed=123, pseudo_filter=fresh())
    second.load_state_dict(state)
    second.fit()
    for a, b in zip(
        straight.generator.state_dict().values(),
        second.generator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    assert torch.equal(
        straight.method.pseudo_filter.threshold(), second.method.pseudo_filter.threshold()
    )
    # The state matters: it has moved away from the initial 1/C.
    assert not torch.equal(straight.method.pseudo_filter.threshold(), fresh().threshold())
