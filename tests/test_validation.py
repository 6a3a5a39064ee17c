"""Tests for tfvae.validation: good values pass, bad ones raise naming argument and value."""

import fractions
import math

import numpy as np
import pytest

from tfvae import validation


def assert_rejected(check, value, argument, expectation):
    with pytest.raises(ValueError) as info:
        check(value, argument)
    message = str(info.value)
    assert f"Expected {argument} to be {expectation}" in message
    assert message.endswith(f"Received: {argument}={value!r}")


# ------------------------------------------------------------------- positive_int


@pytest.mark.parametrize("value", [1, 2, 10**12, np.int64(7), np.uint8(3), np.int32(1)])
def test_positive_int_accepts_positive_integers(value):
    result = validation.positive_int(value, "n")
    assert result == int(value)
    assert type(result) is int


@pytest.mark.parametrize(
    "value",
    [0, -1, -(10**12), True, False, np.bool_(True), 2.5, 2.0, np.float64(3.0), "3", None, [1]],
)
def test_positive_int_rejects(value):
    assert_rejected(validation.positive_int, value, "latent_dim", "a positive integer")


def test_positive_int_message_matches_the_convention():
    with pytest.raises(ValueError) as info:
        validation.positive_int(0, "latent_dim")
    assert str(info.value) == (
        "Expected latent_dim to be a positive integer. Received: latent_dim=0"
    )


# ----------------------------------------------------------------- positive_float


@pytest.mark.parametrize(
    "value",
    [
        1e-300,
        0.5,
        1,
        3,
        np.float32(0.25),
        np.float64(2.0),
        np.int64(4),
        1e300,
        fractions.Fraction(1, 4),
    ],
)
def test_positive_float_accepts_finite_positive_numbers(value):
    result = validation.positive_float(value, "scale")
    assert type(result) is float
    assert result == float(value) and result > 0


@pytest.mark.parametrize(
    "value",
    [
        0,
        0.0,
        -0.0,
        -1,
        -1e-300,
        math.nan,
        math.inf,
        -math.inf,
        np.float32("nan"),
        True,
        False,
        "1.0",
        None,
        1 + 0j,
    ],
)
def test_positive_float_rejects(value):
    assert_rejected(validation.positive_float, value, "scale", "a finite number > 0")


# ------------------------------------------------------------- non_negative_float


@pytest.mark.parametrize("value", [0, 0.0, -0.0, 1e-300, 1, 2.5, np.float32(4.0)])
def test_non_negative_float_accepts_zero_and_positive_numbers(value):
    result = validation.non_negative_float(value, "beta")
    assert type(result) is float
    assert result == float(value)


@pytest.mark.parametrize("value", [-1, -1e-300, math.nan, math.inf, True, "0", None])
def test_non_negative_float_rejects(value):
    assert_rejected(validation.non_negative_float, value, "beta", "a finite number >= 0")


# -------------------------------------------------------------------------- one_of


@pytest.mark.parametrize("value", ["analytic", "mc"])
def test_one_of_returns_a_valid_option(value):
    assert validation.one_of(value, ("analytic", "mc"), "kl") is value


@pytest.mark.parametrize("value", ["exact", "", "MC", None, 0])
def test_one_of_rejects_and_lists_the_options(value):
    with pytest.raises(ValueError) as info:
        validation.one_of(value, ("analytic", "mc"), "kl")
    assert str(info.value) == (
        f"Expected kl to be one of ['analytic', 'mc']. Received: kl={value!r}"
    )


def test_one_of_accepts_any_iterable_of_options():
    options = {"a": 1, "b": 2}
    assert validation.one_of("b", options, "choice") == "b"
    with pytest.raises(ValueError, match=r"one of \['a', 'b'\]"):
        validation.one_of("c", options, "choice")


def test_positive_float_rejects_integers_too_large_for_a_float():
    assert_rejected(validation.positive_float, 10**400, "scale", "a finite number > 0")


@pytest.mark.parametrize("value", [(1.0, 0.0), (0.0, 0.0), (0.0, float("inf")), "ab", 3, (1,)])
def test_value_range_rejects_what_is_not_a_finite_increasing_pair(value):
    with pytest.raises(ValueError, match=r"Expected data_range to be a pair \(low, high\)"):
        validation.value_range(value, "data_range")


def test_value_range_returns_floats():
    assert validation.value_range((0, 16), "data_range") == (0.0, 16.0)


# -------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("value", [0, 7, validation.MAX_SEED, np.int64(3), np.uint32(5)])
def test_seed_accepts_integers_in_the_one_range(value):
    result = validation.seed(value)
    assert result == int(value) and type(result) is int
    assert validation.optional_seed(value) == int(value)


@pytest.mark.parametrize(
    "value", [-1, validation.MAX_SEED + 1, 2**63, True, 1.5, np.float64(2.0), "3", [1, 2]]
)
def test_seed_rejects_everything_else_with_one_message(value):
    with pytest.raises(ValueError) as info:
        validation.seed(value, "sample_seed")
    assert str(info.value) == (
        f"Expected sample_seed to be an integer in [0, 2147483647]. Received: sample_seed={value!r}"
    )
    with pytest.raises(ValueError) as info:
        validation.optional_seed(value)
    assert str(info.value) == (
        f"Expected seed to be an integer in [0, 2147483647] or None. Received: seed={value!r}"
    )


def test_seed_takes_none_only_when_optional():
    assert validation.seed(None, optional=True) is None
    assert validation.optional_seed(None) is None
    with pytest.raises(ValueError, match=r"Received: seed=None"):
        validation.seed(None)


def test_the_seed_range_is_what_numpy_and_keras_accept():
    assert validation.MAX_SEED == 2**31 - 1
    np.random.default_rng(validation.MAX_SEED)
    np.random.SeedSequence(validation.MAX_SEED)
    assert validation.is_seed(validation.MAX_SEED) and not validation.is_seed(-1)
