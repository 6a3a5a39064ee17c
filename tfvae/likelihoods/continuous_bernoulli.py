"""The continuous Bernoulli likelihood: the normalized Bernoulli-shaped density on [0, 1]."""

import numpy as np

from tfvae._lazy import tf, tfd
from tfvae.likelihoods.base import (
    UNIT_HINT,
    UNIT_INTERVAL,
    Likelihood,
    registry,
)
from tfvae.npmath import log_sigmoid

# Below this |logit| the numpy formulas switch to their series (x = u, log C = log 2 + l^2/12).
_SERIES_LOGIT = 1e-4


@registry.register("continuous_bernoulli")
class ContinuousBernoulli(Likelihood):
    """The continuous Bernoulli: the normalized Bernoulli-shaped density on [0, 1].

    Mathematical details: p(x|l) = C(s) s^x (1 - s)^(1 - x) with s = sigmoid(l) and
    C(s) = 2 artanh(1 - 2s) / (1 - 2s) = l / tanh(l / 2) (C = 2 at l = 0). Loaiza-Ganem
    and Cunningham, "The continuous Bernoulli", NeurIPS 2019.
    """

    param_names = ("logits",)

    def support_bounds(self):
        return dict(UNIT_INTERVAL)

    def numpy_sample(self, params, rng):
        # Inverse CDF: x = log1p(u * expm1(l)) / l for logits l (x = u at l = 0).
        logits = np.asarray(params["logits"], dtype=np.float64)
        u = rng.random(logits.shape)
        small = np.abs(logits) < _SERIES_LOGIT
        safe = np.where(small, 1.0, logits)
        x = np.where(small, u, np.log1p(u * np.expm1(safe)) / safe)
        return np.clip(x, 0.0, 1.0).astype(np.float32)

    def numpy_log_prob(self, x, params):
        x = np.asarray(x, dtype=np.float64)  # 1 - x of float32 x would round in float32
        logits = np.asarray(params["logits"], dtype=np.float64)
        small = np.abs(logits) < _SERIES_LOGIT
        safe = np.where(small, 1.0, logits)
        log_normalizer = np.where(
            small, np.log(2.0) + logits**2 / 12.0, np.log(safe / np.tanh(0.5 * safe))
        )
        return x * log_sigmoid(logits) + (1.0 - x) * log_sigmoid(-logits) + log_normalizer

    def _distribution(self, params):
        return tfd.ContinuousBernoulli(logits=params["logits"], dtype=params["logits"].dtype)

    def mean(self, params):
        """E[x] = 1/2 + 1/(2 tanh(l/2)) - 1/l, and 1/2 + l/12 - l^3/720 for |l| < 0.1.

        TFP's mean uses `expm1`, which tf2onnx cannot convert; this form uses `tanh`.
        The series' error is below 1e-9 where it is used, and the closed form loses no
        more than about 1e-6 to cancellation at |l| = 0.1.
        """
        logits = params["logits"]
        small = tf.abs(logits) < 0.1
        safe = tf.where(small, tf.ones_like(logits), logits)
        closed_form = 0.5 + 0.5 / tf.math.tanh(0.5 * safe) - 1.0 / safe
        series = 0.5 + logits / 12.0 - logits**3 / 720.0
        return tf.where(small, series, closed_form)

    def _support_hint(self):
        return UNIT_HINT
