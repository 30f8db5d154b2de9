"""ClasswiseThreshold (FlexMatch): hand-computed thresholds, reference loop, range, exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_trainer
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.filters import AndFilter, ClasswiseThreshold, DiscriminatorGate, filter_stats
from s4seg.schedules import Linear
from s4seg.training.checkpoint import read_checkpoint, save_atomic

fast = settings(max_examples=20, deadline=None)


def prob_logits(p: list[list[float]]) -> torch.Tensor:
    """(1, C, 1, W) logits whose softmax at pixel w is p[w]."""
    return torch.tensor(p, dtype=torch.float64).log().T.reshape(1, len(p[0]), 1, len(p)).float()


# Four pixels, tau 0.5: class 0 at 0.9 and 0.8 (confident), class 1 at 0.7 (confident),
# class 2 at 0.4 (not). Shares: learned (0.5, 0.25, 0), unused 0.25.
PIXELS = [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.15, 0.7, 0.15], [0.3, 0.3, 0.4]]


def test_thresholds_by_hand():
    # momentum 0: after one batch the shares are its own. beta = learned / max(0.5, 0.25)
    # = (1, 0.5, 0); a batch is masked with the thresholds from before it, so the
    # second call shows them.
    f = ClasswiseThreshold(3, threshold=0.5, momentum=0.0)
    f.decide(logits=prob_logits(PIXELS), step=0)
    d = f.decide(logits=prob_logits(PIXELS), step=1)
    # convex M(x) = x / (2 - x): (1, 1/3, 0), times tau.
    assert d.pixel_threshold.tolist() == pytest.approx([0.5, 0.5 / 3, 0.0], abs=1e-6)
    lin = ClasswiseThreshold(3, threshold=0.5, momentum=0.0, mapping="linear")
    lin.decide(logits=prob_logits(PIXELS), step=0)
    assert lin.decide(logits=prob_logits(PIXELS), step=1).pixel_threshold.tolist() == pytest.approx(
        [0.5, 0.25, 0.0], abs=1e-6
    )
    # Class 0 pixels need 0.5 (both pass), class 1 needs 1/6 (passes), class 2 needs 0.
    assert int(filter_stats(d, prob_logits(PIXELS)).pixels_kept) == 4


def test_thresholds_start_near_zero_and_rise():
    # Nothing learnt yet: every threshold is 0, as FlexMatch's "threshold warm-up" starts.
    f = ClasswiseThreshold(3, threshold=0.9, momentum=0.5)
    assert f.class_thresholds(0.9).tolist() == [0.0, 0.0, 0.0]
    sure = prob_logits([[0.98, 0.01, 0.01]] * 4)
    thresholds = [float(f.decide(logits=sure, step=s).pixel_threshold[0]) for s in range(5)]
    assert thresholds == sorted(thresholds) and thresholds[-1] > 0.5
    # Without counting the unused share, the best-learnt class gets tau after one batch.
    g = ClasswiseThreshold(3, threshold=0.9, momentum=0.5, count_unused=False)
    g.decide(logits=sure, step=0)
    assert float(g.decide(logits=sure, step=1).pixel_threshold[0]) == pytest.approx(0.9)


def reference(batches, taus, num_classes, momentum, count_unused=True):
    """FlexMatch's class-wise thresholds over EMA pixel shares, in float64 numpy.

    As USB's FlexMatchThresholdingHook.masking: a batch is masked with the thresholds
    of the state before it, then counted, a pixel with confidence >= tau as learnt.
    """
    learned, unused = np.zeros(num_classes), 1.0
    out = []
    for logits, tau in zip(batches, taus, strict=True):
        top = max(learned.max(), unused) if count_unused else learned.max()
        beta = learned / max(top, np.finfo(np.float32).tiny)
        out.append(beta / (2 - beta) * tau)
        x = logits.double().numpy()
        e = np.exp(x - x.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        conf, pseudo = probs.max(axis=1).ravel(), probs.argmax(axis=1).ravel()
        share = np.array([((pseudo == c) & (conf >= tau)).mean() for c in range(num_classes)])
        learned = momentum * learned + (1 - momentum) * share
        unused = momentum * unused + (1 - momentum) * (conf < tau).mean()
    return out


def test_matches_the_reference_with_a_scheduled_tau():
    gen = torch.Generator().manual_seed(0)
    batches = [4 * torch.randn(2, 4, 6, 5, generator=gen) for _ in range(6)]
    schedule = Linear(0.5, 0.9, steps=5)
    f = ClasswiseThreshold(4, threshold=schedule, momentum=0.6)
    got = [f.decide(logits=b, step=i).pixel_threshold.numpy() for i, b in enumerate(batches)]
    want = reference(batches, [schedule(i) for i in range(6)], 4, 0.6)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@fast
@given(
    c=st.integers(2, 6),
    tau=st.floats(0.0, 1.0),
    momentum=st.floats(0.0, 0.999),
    scale=st.floats(0.0, 50.0),
    count_unused=st.booleans(),
    seed=st.integers(0, 99),
)
def test_thresholds_stay_between_zero_and_tau(c, tau, momentum, scale, count_unused, seed):
    gen = torch.Generator().manual_seed(seed)
    f = ClasswiseThreshold(c, threshold=tau, momentum=momentum, count_unused=count_unused)
    for step in range(4):
        t = f.decide(logits=scale * torch.randn(3, c, 2, 2, generator=gen), step=step)
        assert t.pixel_threshold.shape == (c,)
        assert bool(((t.pixel_threshold >= 0) & (t.pixel_threshold <= tau)).all())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="'convex' or 'linear'"):
        ClasswiseThreshold(3, mapping="square")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        ClasswiseThreshold(3, threshold=95)
    with pytest.raises(ValueError, match="expected"):
        ClasswiseThreshold(3).load_state_dict({"learned": torch.zeros(3)})


def test_resumed_run_inside_an_and_filter_is_bit_identical(tmp_path):
    def fresh():
        return AndFilter(
            DiscriminatorGate(0.2, check_range=False),
            ClasswiseThreshold(6, threshold=0.3, momentum=0.5),
        )

    straight = make_trainer(max_steps=6, pseudo_filter=fresh())
    straight.fit()
    first = make_trainer(max_steps=6, pseudo_filter=fresh())
    first.fit(until=3)
    state = read_checkpoint(save_atomic(first.state_dict(), tmp_path / "c.pt"))
    assert set(state["method"]["self_training"]["filter"]) == {
        "1"
    }  # only the stateful part, by position
    second = make_trainer(max_steps=6, seed=123, pseudo_filter=fresh())
    second.load_state_dict(state)
    second.fit()
    for a, b in zip(
        straight.generator.state_dict().values(),
        second.generator.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)
    s, r = (
        straight.method.pseudo_filter.state_dict()["1"],
        second.method.pseudo_filter.state_dict()["1"],
    )
    assert torch.equal(s["learned"], r["learned"]) and torch.equal(s["unused"], r["unused"])
    assert float(s["unused"]) < 1.0  # the state moved: the check above can fail
    with pytest.raises(ValueError, match="same parts in the same order"):
        AndFilter(DiscriminatorGate(0.2)).load_state_dict(
            state["method"]["self_training"]["filter"]
        )


def test_a_batch_is_masked_with_the_thresholds_from_before_it():
    # FlexMatch's reference code (USB, TorchSSL) masks, then updates: the first batch
    # sees the initial "nothing learnt" state, so every class threshold is 0.
    f = ClasswiseThreshold(3, threshold=0.9, momentum=0.0)
    confident = torch.zeros(2, 3, 2, 2)
    confident[:, 1] = 20.0  # every pixel class 1, confidence ~1
    first = f.decide(logits=confident, step=0).pixel_threshold
    assert first.tolist() == [0.0, 0.0, 0.0]
    second = f.decide(logits=confident, step=1).pixel_threshold
    assert second[1] == pytest.approx(0.9) and second[0] == 0.0  # class 1 now learnt


def test_confidence_equal_to_tau_counts_as_learnt():
    f = ClasswiseThreshold(2, threshold=0.5, momentum=0.0, count_unused=False)
    tie = torch.zeros(1, 2, 1, 1)  # softmax [0.5, 0.5]: confidence exactly tau
    f.update(tie, 0.5)
    assert f.learned.tolist() == [1.0, 0.0]  # argmax takes the first class, counted (>=)
