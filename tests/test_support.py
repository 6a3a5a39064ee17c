"""Support bounds as plain data: words, display ranges and numpy checks."""

import numpy as np
import pytest

from tfvae import support

COUNTS = {"low": 0.0, "high": 16.0, "integer": True}
UNIT = {"low": 0.0, "high": 1.0, "integer": False}
FINITE = {"low": None, "high": None, "integer": False}
POSITIVE = {"low": 0.0, "high": None, "integer": False}


@pytest.mark.parametrize(
    "bounds, words",
    [
        (COUNTS, "integers in [0, 16]"),
        (UNIT, "reals in [0, 1]"),
        (FINITE, "finite reals"),
        (POSITIVE, "reals >= 0"),
        ({"low": None, "high": 2.5, "integer": True}, "integers <= 2.5"),
    ],
)
def test_describe(bounds, words):
    assert support.describe(bounds) == words


def test_display_range_is_the_bounds_when_both_are_finite():
    assert support.display_range(COUNTS) == (0.0, 16.0)
    assert support.display_range(POSITIVE) is None and support.display_range(FINITE) is None


def test_contains_elementwise():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 16.0, 17.0, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(support.contains(x, COUNTS), [0, 1, 0, 1, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(support.contains(x, UNIT), [0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(support.contains(x, FINITE), [1, 1, 1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(support.contains(x, POSITIVE), [0, 1, 1, 1, 1, 1, 1, 0, 0, 0])


def test_check_names_the_argument_the_family_the_first_offender_and_the_range():
    x = np.array([[0.0, 3.0], [2.5, np.nan]])
    with pytest.raises(ValueError) as info:
        support.check(x, COUNTS, "validation_data", "binomial", "Hint: pass counts.")
    assert str(info.value) == (
        "Expected validation_data in the support of the 'binomial' likelihood: integers in "
        "[0, 16]. Received: validation_data with 2 of 4 entries outside it (2.5 at index "
        "(1, 0); 1 NaN; the values range over [0, 3]). Hint: pass counts."
    )
    support.check(np.array([0.0, 16.0]), COUNTS, "x", "binomial")  # in the support: silent


def test_check_finite_counts_and_locates_the_offenders():
    with pytest.raises(
        ValueError,
        match=r"Expected z to be finite\. Received: z with 2 non-finite "
        r"entries \(inf at index \(0, 1\)\)",
    ):
        support.check_finite(np.array([[0.0, np.inf], [np.nan, 1.0]]), "z")
    support.check_finite(np.zeros(3), "z")
