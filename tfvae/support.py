"""Where data may lie: a likelihood's support as plain data, checked with numpy.

A likelihood declares its support once (`Likelihood.support_bounds()`) as

    {"low": float or None, "high": float or None, "integer": bool}

values are finite, `low <= x <= high` (None: unbounded on that side) and, when
`integer`, whole numbers. The export writes it into the bundle's manifest; this module
turns it into words, into a display range and into checks, for the Keras side and the
ONNX runtime alike. It imports numpy only.

    >>> bounds = {"low": 0.0, "high": 16.0, "integer": True}
    >>> describe(bounds)
    'integers in [0, 16]'
    >>> contains(np.array([0.0, 2.5, 17.0]), bounds)
    array([ True, False, False])
"""

import numpy as np


def describe(bounds: dict) -> str:
    """The support in words: "integers in [0, 16]", "reals in [0, 1]", "finite reals"."""
    kind = "integers" if bounds["integer"] else "reals"
    low, high = bounds["low"], bounds["high"]
    if low is None and high is None:
        return f"finite {kind}"
    if high is None:
        return f"{kind} >= {low:g}"
    if low is None:
        return f"{kind} <= {high:g}"
    return f"{kind} in [{low:g}, {high:g}]"


def display_range(bounds: dict) -> tuple[float, float] | None:
    """`(low, high)`, the values pictures show as black and white; None if unbounded."""
    if bounds["low"] is None or bounds["high"] is None:
        return None
    return float(bounds["low"]), float(bounds["high"])


def contains(x, bounds: dict) -> np.ndarray:
    """Elementwise: is each entry of `x` in the support that `bounds` describes?

    Returns:
        A boolean array shaped like `x`; False for NaN and infinities.
    """
    x = np.asarray(x)
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(x)
        if bounds["low"] is not None:
            inside &= x >= bounds["low"]
        if bounds["high"] is not None:
            inside &= x <= bounds["high"]
        if bounds["integer"]:
            inside &= x == np.round(x)
    return inside


def first_offender(value: np.ndarray, bad: np.ndarray) -> str:
    """The first entry where `bad` is True, as "VALUE at index (i, j, ...)"."""
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{value[index]:g} at index {index}"


def check_finite(value, argument: str) -> None:
    """Raises a ValueError naming `argument` when `value` has a NaN or an infinity."""
    value = np.asarray(value)
    bad = ~np.isfinite(value)
    if bad.any():
        raise ValueError(
            f"Expected {argument} to be finite. Received: {argument} with "
            f"{np.count_nonzero(bad)} non-finite entries ({first_offender(value, bad)})"
        )


def check(x, bounds: dict, argument: str, family: str, hint: str = "") -> None:
    """Raises a ValueError naming `argument` unless every entry of `x` is in the support.

    Args:
        x: an array of data values.
        bounds: the support, as above.
        argument: the user's name for `x`, for the message.
        family: the likelihood's name, for the message.
        hint: a sentence on how to fix the data, appended to the message.
    """
    x = np.asarray(x)
    outside = ~contains(x, bounds)
    if outside.any():
        numbers = x[~np.isnan(x)]
        observed = (
            f"the values range over [{numbers.min():g}, {numbers.max():g}]"
            if numbers.size
            else "every value is NaN"
        )
        raise ValueError(
            f"Expected {argument} in the support of the {family!r} likelihood: "
            f"{describe(bounds)}. Received: {argument} with {np.count_nonzero(outside)} of "
            f"{x.size} entries outside it ({first_offender(x, outside)}; "
            f"{np.count_nonzero(np.isnan(x))} NaN; {observed}). {hint}".rstrip()
        )
