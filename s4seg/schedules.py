"""Threshold schedules: stateless functions of the training step.

A schedule holds no state: the trainer passes the step in, so resuming a run needs
nothing but the step (the timm scheduler rule: "all epoch and update counts must be
tracked in the training code and explicitly passed in"). Each schedule is a frozen
dataclass, so its ``repr`` is readable in a log line and it compares by value.

Every value is a probability or a fraction, so every schedule stays in [0, 1].

Example, the schedules asked for after a failed S4GAN run (linear 0.2 -> 0.05 over
25k iterations; steps 0.05 / 0.10 / 0.15 / 0.20 at 0 / 5k / 15k / 30k)::

    Linear(0.2, 0.05, steps=25_000)
    Step({0: 0.05, 5_000: 0.10, 15_000: 0.15, 30_000: 0.20})
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from s4seg.checks import check_count, check_probability, check_step

__all__ = ["Constant", "Cosine", "Linear", "Schedule", "Step", "as_schedule"]


@runtime_checkable
class Schedule(Protocol):
    """A value in [0, 1] as a pure function of the training step."""

    def __call__(self, step: int) -> float: ...


def _probability(name: str, value: object) -> float:
    return check_probability(
        value, name, hint="thresholds in s4seg are probabilities, not percentages or logits"
    )


def _count(name: str, value: object, minimum: int) -> int:
    return check_count(value, name, minimum=minimum)


def _lerp(start: float, end: float, t: float) -> float:
    """``start + t * (end - start)``, exact at both ends and monotone in ``t``.

    Written like C++'s ``std::lerp``: the naive form can overshoot ``end`` by one
    ulp near ``t = 1`` and so break monotonicity (or leave [0, 1]).
    """
    if t >= 1.0:
        return end
    x = start + t * (end - start)
    return min(x, end) if end >= start else max(x, end)


def _progress(step: int, steps: int, delay: int) -> float:
    """Fraction of the ramp done at ``step``: 0 up to ``delay``, 1 from ``delay + steps``."""
    return min(max(step - delay, 0) / steps, 1.0)


@dataclass(frozen=True)
class Constant:
    """The same value at every step.

    Args:
        value: the value, in [0, 1].
    """

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _probability("value", self.value))

    def __call__(self, step: int) -> float:
        check_step(step)
        return self.value


@dataclass(frozen=True)
class _Ramp:
    """``start`` until ``delay``, a ramp of ``steps`` steps, then ``end``; subclasses shape it."""

    start: float
    end: float
    steps: int
    delay: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _probability("start", self.start))
        object.__setattr__(self, "end", _probability("end", self.end))
        object.__setattr__(self, "steps", _count("steps", self.steps, 1))
        object.__setattr__(self, "delay", _count("delay", self.delay, 0))

    def _weight(self, t: float) -> float:
        """Weight of ``end`` at ramp progress ``t`` in [0, 1]."""
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        t = _progress(check_step(step), self.steps, self.delay)
        return _lerp(self.start, self.end, self._weight(t))


@dataclass(frozen=True)
class Linear(_Ramp):
    """Linear ramp from ``start`` to ``end`` over ``steps`` steps, after ``delay`` steps.

    Holds ``start`` up to step ``delay``, reaches ``end`` at ``delay + steps`` and
    holds it after. Works in either direction (``start > end`` decays).

    Args:
        start: value up to ``delay``, in [0, 1].
        end: value from ``delay + steps`` on, in [0, 1].
        steps: length of the ramp, >= 1.
        delay: steps to hold ``start`` before the ramp begins, >= 0.
    """

    def _weight(self, t: float) -> float:
        return t


@dataclass(frozen=True)
class Cosine(_Ramp):
    """Half-cosine ramp from ``start`` to ``end`` over ``steps`` steps, after ``delay``.

    Like :class:`Linear`, but the value moves slowly near both ends:
    ``end + (start - end) * (1 + cos(pi * t)) / 2`` with ``t`` the ramp progress.

    Args:
        start: value up to ``delay``, in [0, 1].
        end: value from ``delay + steps`` on, in [0, 1].
        steps: length of the ramp, >= 1.
        delay: steps to hold ``start`` before the ramp begins, >= 0.
    """

    def _weight(self, t: float) -> float:
        # 0 at t=0, 1 at t=1; clamped because cos is rounded.
        return min(max((1.0 - math.cos(math.pi * t)) / 2.0, 0.0), 1.0)


@dataclass(frozen=True, init=False)
class Step:
    """Piecewise-constant schedule: the value of the largest milestone <= step.

    Args:
        milestones: ``{step: value}`` or a sequence of ``(step, value)`` pairs. Must
            contain step 0 (so every step has a value); steps are distinct ints
            >= 0 and values lie in [0, 1].

    Example:
        ``Step({0: 0.05, 5000: 0.10, 15000: 0.15, 30000: 0.20})(7000) == 0.10``
    """

    milestones: tuple[tuple[int, float], ...]

    def __init__(self, milestones: Mapping[int, float] | Sequence[tuple[int, float]]) -> None:
        if isinstance(milestones, Mapping):
            pairs = list(milestones.items())
        elif isinstance(milestones, Sequence) and not isinstance(milestones, str):
            pairs = list(milestones)
        else:
            raise TypeError(
                f"milestones must be a mapping {{step: value}} or a sequence of (step, value) "
                f"pairs, got {milestones!r}"
            )
        if not pairs:
            raise ValueError("milestones is empty: give at least {0: value}")
        checked: dict[int, float] = {}
        for pair in pairs:
            if not isinstance(pair, Sequence) or len(pair) != 2:
                raise TypeError(f"each milestone must be a (step, value) pair, got {pair!r}")
            step = _count("milestone step", pair[0], 0)
            if step in checked:
                raise ValueError(f"milestone step {step} is given twice; give each step once")
            checked[step] = _probability(f"value at milestone {step}", pair[1])
        if 0 not in checked:
            raise ValueError(
                f"milestones must include step 0 so that every step has a value, got steps "
                f"{sorted(checked)}; add {{0: value}}"
            )
        object.__setattr__(self, "milestones", tuple(sorted(checked.items())))

    def __call__(self, step: int) -> float:
        s = check_step(step)
        starts = [m for m, _ in self.milestones]
        return self.milestones[bisect.bisect_right(starts, s) - 1][1]

    def __repr__(self) -> str:
        return f"Step(milestones={dict(self.milestones)!r})"


def as_schedule(value: float | Schedule) -> Schedule:
    """A schedule from a number (held constant) or a schedule (returned as is).

    Args:
        value: a number in [0, 1] or a callable ``step -> float``.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return Constant(float(value))
    if callable(value):
        return value
    raise TypeError(
        f"expected a number in [0, 1] or a schedule (a callable step -> float), got {value!r}"
    )
