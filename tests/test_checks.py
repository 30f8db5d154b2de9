"""s4seg.checks: one place for the settings checks; each error names the setting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s4seg.checks import check_count, check_int, check_probability, check_real, check_step


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_probability_accepts_exactly_the_unit_interval(x: float) -> None:
    if 0.0 <= x <= 1.0:
        assert check_probability(x, "p") == x
    else:
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
            check_probability(x, "p")


@given(st.floats(-10, 10), st.floats(-10, 10), st.booleans(), st.booleans())
def test_real_bounds_and_open_ends(x: float, low: float, low_open: bool, high_open: bool) -> None:
    high = low + 5
    inside = (x > low if low_open else x >= low) and (x < high if high_open else x <= high)
    if inside:
        assert check_real(x, "v", low=low, high=high, low_open=low_open, high_open=high_open) == x
    else:
        with pytest.raises(ValueError, match="v must be in"):
            check_real(x, "v", low=low, high=high, low_open=low_open, high_open=high_open)


def test_messages_name_owner_setting_value_and_hint() -> None:
    with pytest.raises(ValueError) as info:
        check_real(-1.0, "lr_d", low=0.0, owner="S4GAN", hint="0 freezes the discriminator")
    assert str(info.value) == (
        "S4GAN lr_d must be in [0, inf], got -1.0; 0 freezes the discriminator"
    )
    with pytest.raises(ValueError, match=r"must be in \(0, 1\), got nan"):
        check_real(math.nan, "m", low=0, high=1, low_open=True, high_open=True)


@pytest.mark.parametrize("bad", [True, "0.5", None, [0.5]])
def test_non_numbers_and_bools_are_type_errors(bad) -> None:
    with pytest.raises(TypeError, match="must be a real number"):
        check_probability(bad, "threshold")
    with pytest.raises(TypeError, match="must be an int"):
        check_int(bad, "steps")


def test_counts_take_numpy_ints_and_refuse_floats() -> None:
    assert check_count(np.int64(3), "n") == 3
    with pytest.raises(TypeError, match=r"n must be an int, got 3\.0"):
        check_count(3.0, "n")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_count(0, "n", minimum=1)
    assert check_step(0) == 0
    with pytest.raises(ValueError, match="iteration counter"):
        check_step(-1)
