"""Tests for s4seg.schedules. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s4seg.schedules import Constant, Cosine, Linear, Schedule, Step, as_schedule

prob = st.floats(0.0, 1.0, allow_nan=False)
steps_st = st.integers(1, 10_000)
delay_st = st.integers(0, 1_000)
step_st = st.integers(0, 50_000)
fast = settings(max_examples=25, deadline=None)


# --- hand-computed values -----------------------------------------------------------


def test_constant() -> None:
    s = Constant(0.2)
    assert s(0) == 0.2
    assert s(10**9) == 0.2


def test_linear_field_report_schedule() -> None:
    # 0.2 -> 0.05 over 25k: halfway is 0.125, a fifth of the way 0.2 - 0.15/5 = 0.17.
    s = Linear(0.2, 0.05, steps=25_000)
    assert s(0) == 0.2
    assert s(12_500) == pytest.approx(0.125, abs=1e-15)
    assert s(5_000) == pytest.approx(0.17, abs=1e-15)
    assert s(25_000) == 0.05
    assert s(10**7) == 0.05


def test_linear_delay_and_increasing() -> None:
    # Holds 0.1 up to step 100, then +0.8 over 200 steps: step 150 -> 0.1 + 0.8/4 = 0.3.
    s = Linear(0.1, 0.9, steps=200, delay=100)
    assert s(0) == 0.1
    assert s(100) == 0.1
    assert s(150) == pytest.approx(0.3, abs=1e-15)
    assert s(300) == 0.9
    assert s(301) == 0.9


def test_step_field_report_schedule() -> None:
    s = Step({0: 0.05, 5_000: 0.10, 15_000: 0.15, 30_000: 0.20})
    assert [s(i) for i in (0, 4_999, 5_000, 14_999, 15_000, 29_999, 30_000, 10**6)] == [
        0.05,
        0.05,
        0.10,
        0.10,
        0.15,
        0.15,
        0.20,
        0.20,
    ]


def test_step_accepts_unsorted_pairs() -> None:
    assert Step([(10, 0.5), (0, 0.1)]) == Step({0: 0.1, 10: 0.5})
    assert Step([(10, 0.5), (0, 0.1)])(9) == 0.1


def test_cosine() -> None:
    # Half-way through a half-cosine is the midpoint; a quarter: 1 - (1 - cos(pi/4))/2.
    s = Cosine(1.0, 0.0, steps=100, delay=10)
    assert s(0) == 1.0
    assert s(10) == 1.0
    assert s(60) == pytest.approx(0.5, abs=1e-12)
    assert s(35) == pytest.approx((1 + math.cos(math.pi / 4)) / 2, abs=1e-12)
    assert s(110) == 0.0


# --- repr ---------------------------------------------------------------------------


def test_reprs_are_readable_and_round_trip() -> None:
    for s in (
        Constant(0.2),
        Linear(0.2, 0.05, steps=25_000, delay=1_000),
        Cosine(0.9, 0.5, steps=10),
        Step({0: 0.05, 5_000: 0.1}),
    ):
        assert eval(repr(s)) == s  # the repr is a constructor call
    assert repr(Step({5_000: 0.1, 0: 0.05})) == "Step(milestones={0: 0.05, 5000: 0.1})"
    assert repr(Linear(0.2, 0.05, 100)) == "Linear(start=0.2, end=0.05, steps=100, delay=0)"


def test_frozen_and_protocol() -> None:
    s = Linear(0.2, 0.05, 10)
    with pytest.raises(AttributeError):
        s.start = 0.3  # type: ignore[misc]
    for sched in (s, Constant(0.1), Step({0: 0.1}), Cosine(0.1, 0.2, 3)):
        assert isinstance(sched, Schedule)


def test_as_schedule() -> None:
    assert as_schedule(0.3) == Constant(0.3)
    assert as_schedule(1) == Constant(1.0)
    lin = Linear(0.2, 0.05, 10)
    assert as_schedule(lin) is lin
    with pytest.raises(ValueError, match=r"1\.5"):
        as_schedule(1.5)
    with pytest.raises(TypeError, match="schedule"):
        as_schedule("0.2")  # type: ignore[arg-type]


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Constant(1.2), r"value must be in \[0, 1\].*1.2"),
        (lambda: Constant(-0.1), "-0.1"),
        (lambda: Constant(float("nan")), "nan"),
        (lambda: Linear(20, 5, 100), "start.*20"),
        (lambda: Linear(0.2, 5, 100), "end.*5"),
        (lambda: Linear(0.2, 0.1, 0), "steps must be >= 1, got 0"),
        (lambda: Linear(0.2, 0.1, 10, delay=-1), "delay must be >= 0, got -1"),
        (lambda: Cosine(0.2, 1.1, 10), "end.*1.1"),
        (lambda: Step({}), "empty"),
        (lambda: Step({5: 0.1}), r"include step 0.*\[5\]"),
        (lambda: Step({0: 0.1, 5: 2.0}), "milestone 5.*2.0"),
        (lambda: Step([(0, 0.1), (0, 0.2)]), "step 0 is given twice"),
        (lambda: Step({0: 0.1, -5: 0.2}), "-5"),
    ],
)
def test_bad_arguments_name_the_value(make, match) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_types() -> None:
    with pytest.raises(TypeError, match="steps must be an int"):
        Linear(0.2, 0.1, 10.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="real number"):
        Constant("0.2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pair"):
        Step([(0, 0.1, 3)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "sched", [Constant(0.2), Linear(0.2, 0.1, 10), Cosine(0.2, 0.1, 10), Step({0: 0.1})]
)
def test_negative_step_raises(sched) -> None:
    with pytest.raises(ValueError, match=r"step must be >= 0.*-1"):
        sched(-1)
    with pytest.raises(TypeError, match="step must be an int"):
        sched(1.5)


# --- properties ---------------------------------------------------------------------


@fast
@given(prob, prob, steps_st, delay_st, step_st)
def test_ramps_stay_in_range_between_ends(start, end, steps, delay, step) -> None:
    for cls in (Linear, Cosine):
        v = cls(start, end, steps, delay)(step)
        assert 0.0 <= v <= 1.0
        assert min(start, end) <= v <= max(start, end)


@fast
@given(prob, prob, steps_st, delay_st, st.lists(step_st, min_size=2, max_size=20))
def test_ramps_monotone_from_start_to_end(start, end, steps, delay, steps_list) -> None:
    for cls in (Linear, Cosine):
        s = cls(start, end, steps, delay)
        values = [s(i) for i in sorted(steps_list)]
        pairs = list(itertools.pairwise(values))
        if end >= start:
            assert all(a <= b for a, b in pairs)
        else:
            assert all(a >= b for a, b in pairs)


@fast
@given(prob, prob, steps_st, delay_st, st.integers(0, 1_000))
def test_ramps_hold_start_during_delay_and_end_after(start, end, steps, delay, k) -> None:
    for cls in (Linear, Cosine):
        s = cls(start, end, steps, delay)
        assert s(min(k, delay)) == start
        assert s(delay + steps + k) == end


@fast
@given(st.dictionaries(st.integers(1, 10_000), prob, max_size=6), prob, step_st)
def test_step_piecewise_constant_and_equal_to_milestones(rest, first, step) -> None:
    milestones = {0: first, **rest}
    s = Step(milestones)
    for m, v in milestones.items():
        assert s(m) == v  # equals the milestone value at the milestone
    # Piecewise constant: the value at `step` is the value of the last milestone <= step.
    last = max(m for m in milestones if m <= step)
    assert s(step) == milestones[last]
    nxt = min((m for m in milestones if m > step), default=None)
    if nxt is not None:
        assert s(nxt - 1) == s(step)
    assert 0.0 <= s(step) <= 1.0


@fast
@given(prob, step_st)
def test_constant_property(v, step) -> None:
    assert Constant(v)(step) == v
