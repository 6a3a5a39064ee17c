"""The shared numpy functions against scipy.special, at ordinary and extreme values."""

import numpy as np
from scipy import special

from tfvae import npmath

LOGITS = np.array([-800.0, -40.0, -1.0, 0.0, 1e-8, 3.0, 40.0, 800.0])


def test_sigmoid_and_log_sigmoid_match_scipy_without_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np.testing.assert_allclose(npmath.sigmoid(LOGITS), special.expit(LOGITS), rtol=1e-15)
        np.testing.assert_allclose(
            npmath.log_sigmoid(LOGITS), special.log_expit(LOGITS), rtol=1e-13
        )


def test_logsumexp_and_log_softmax_match_scipy():
    values = np.random.default_rng(0).normal(scale=300.0, size=(4, 7))
    for axis in (0, 1, -1):
        np.testing.assert_allclose(
            npmath.logsumexp(values, axis), special.logsumexp(values, axis=axis), rtol=1e-13
        )
    np.testing.assert_allclose(
        npmath.log_softmax(values), special.log_softmax(values, axis=-1), atol=1e-12
    )


def test_logsumexp_of_minus_infinities_is_minus_infinity():
    values = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    with np.errstate(invalid="raise"):
        np.testing.assert_array_equal(npmath.logsumexp(values, axis=1), [-np.inf, 0.0])
