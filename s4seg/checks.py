"""Checks of user settings: a probability, a count, an integer, a number in a range.

One place for the checks that every part needs at construction, so that each error
names the setting, the value that was wrong and what is expected, in the same words
everywhere. Booleans are refused where a number is expected (``True`` is an ``int``
in Python, and ``threshold=True`` is always a mistake); NaN fails every range.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

__all__ = ["check_count", "check_int", "check_probability", "check_real", "check_step"]


def _label(name: str, owner: str) -> str:
    return f"{owner} {name}" if owner else name


def check_int(value: Any, name: str, *, owner: str = "") -> int:
    """``value`` as an ``int`` (Python or numpy integers), or a TypeError naming it."""
    label = _label(name, owner)
    if isinstance(value, bool):
        raise TypeError(f"{label} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{label} must be an int, got {value!r}") from None


def check_count(value: Any, name: str, *, minimum: int = 0, owner: str = "", hint: str = "") -> int:
    """``value`` as an int >= ``minimum`` (a number of steps, images, classes, ...)."""
    v = check_int(value, name, owner=owner)
    if v < minimum:
        raise ValueError(f"{_label(name, owner)} must be >= {minimum}, got {v}{_hint(hint)}")
    return v


def check_step(step: Any) -> int:
    """A training step: an int >= 0 (the trainer's iteration counter)."""
    return check_count(step, "step", hint="the trainer's iteration counter")


def check_real(
    value: Any,
    name: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    owner: str = "",
    hint: str = "",
) -> float:
    """``value`` as a finite-or-bounded float in the interval from ``low`` to ``high``.

    Args:
        value: the setting.
        name: its name, for the message.
        low: the lower bound.
        high: the upper bound.
        low_open: exclude ``low``.
        high_open: exclude ``high``.
        owner: the class or function the setting belongs to, for the message.
        hint: a short fix or explanation appended to the message.
    """
    label = _label(name, owner)
    interval = f"{'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{label} must be a real number in {interval}, got {value!r}")
    v = float(value)
    above = v > low if low_open else v >= low
    below = v < high if high_open else v <= high
    if not (above and below):  # NaN fails both comparisons
        raise ValueError(f"{label} must be in {interval}, got {v}{_hint(hint)}")
    return v


def check_probability(value: Any, name: str, *, owner: str = "", hint: str = "") -> float:
    """``value`` as a float in [0, 1] (a probability or a fraction)."""
    return check_real(value, name, low=0.0, high=1.0, owner=owner, hint=hint)


def _bound(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""
