"""Argument checks shared by the constructors: clear errors naming the argument."""

import math
import numbers


def positive_int(value, argument: str) -> int:
    """Returns `value` as an int, or raises ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"Expected {argument} to be a positive integer. Received: {argument}={value!r}"
        )
    return int(value)


def non_negative_int(value, argument: str) -> int:
    """Returns `value` as an int, or raises ValueError unless it is an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(
            f"Expected {argument} to be a non-negative integer. Received: {argument}={value!r}"
        )
    return int(value)


MAX_SEED = 2**31 - 1
"""The largest integer seed tfvae accepts. An integer seed, wherever it is passed (models,
networks, priors, stateless seeds, data pipelines), is checked by `seed` to lie in
[0, MAX_SEED]: the range that Keras initializers, numpy's `SeedSequence` and
`default_rng`, and `tf.data` all accept."""


def seed(value, argument: str = "seed", *, optional: bool = False) -> int | None:
    """Returns `value` as an int seed in [0, MAX_SEED] (None too when `optional`).

    Raises:
        ValueError: for anything else, with `seed_error`'s message.

    Example:

    >>> seed(7)
    7
    >>> seed(-1)
    Traceback (most recent call last):
    ValueError: Expected seed to be an integer in [0, 2147483647]. Received: seed=-1
    """
    if value is None and optional:
        return None
    if not is_seed(value):
        raise seed_error(value, argument, "None" if optional else None)
    return int(value)


def is_seed(value) -> bool:
    """Whether `value` is an integer seed in [0, MAX_SEED] (bools are not)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Integral)
        and 0 <= value <= MAX_SEED
    )


def seed_error(value, argument: str = "seed", alternative: str | None = None) -> ValueError:
    """The one error for a bad seed: `Expected seed to be an integer in [0, MAX_SEED]`,
    `or <alternative>` when the caller also takes something else, and the value."""
    other = f" or {alternative}" if alternative else ""
    return ValueError(
        f"Expected {argument} to be an integer in [0, {MAX_SEED}]{other}. "
        f"Received: {argument}={value!r}"
    )


def optional_seed(value, argument: str = "seed") -> int | None:
    """`seed(value, argument, optional=True)`: an int seed in [0, MAX_SEED], or None."""
    return seed(value, argument, optional=True)


def offset_seed(seed: int | None, offset: int) -> int | None:
    """The seed `offset` places after `seed`, wrapping around past MAX_SEED to 0, so
    that it stays a valid seed (None stays None: fresh randomness)."""
    return None if seed is None else (seed + offset) % (MAX_SEED + 1)


def positive_float(value, argument: str) -> float:
    """Returns `value` as a float, or raises ValueError unless it is finite and > 0."""
    return _finite_float(value, argument, minimum=0.0, strict=True)


def non_negative_float(value, argument: str) -> float:
    """Returns `value` as a float, or raises ValueError unless it is finite and >= 0."""
    return _finite_float(value, argument, minimum=0.0, strict=False)


def _finite_float(value, argument: str, minimum: float, strict: bool) -> float:
    number = _as_float(value)
    if (
        number is None
        or not math.isfinite(number)
        or number < minimum
        or (strict and number == minimum)
    ):
        relation = ">" if strict else ">="
        raise ValueError(
            f"Expected {argument} to be a finite number {relation} {minimum:g}. "
            f"Received: {argument}={value!r}"
        )
    return number


def _as_float(value) -> float | None:
    """`value` as a float (inf for integers too large for one), or None if not a number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def value_range(value, argument: str) -> tuple[float, float]:
    """Returns `value` as a pair `(low, high)` of floats, or raises ValueError unless they
    are finite with high > low (e.g. the data values shown as black and white)."""
    try:
        low, high = (float(number) for number in value)
    except (TypeError, ValueError):
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(
            f"Expected {argument} to be a pair (low, high) of finite numbers with high > low. "
            f"Received: {argument}={value!r}"
        )
    return low, high


def one_of(value, options, argument: str):
    """Returns `value`, or raises ValueError listing `options` when it is not one of them."""
    if value not in options:
        raise ValueError(
            f"Expected {argument} to be one of {list(options)}. Received: {argument}={value!r}"
        )
    return value
