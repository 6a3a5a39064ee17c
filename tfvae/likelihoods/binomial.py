"""The binomial likelihood: counts out of a fixed number of trials."""

import functools
import math

import numpy as np

from tfvae import validation
from tfvae._lazy import tfd
from tfvae.likelihoods.base import Likelihood, registry
from tfvae.npmath import log_sigmoid, sigmoid


@registry.register("binomial")
class Binomial(Likelihood):
    """Binomial counts out of a fixed `total_count`, parameterized by logits.

    Mathematical details: log p(x|z) = sum_i log C(n, x_i) + x_i log s(l_i)
    + (n - x_i) log(1 - s(l_i)), with n = total_count. The 8x8 digits (grey levels
    0..16) are binomial with n = 16.

    Args:
        total_count: the number of trials n, a positive integer.
    """

    param_names = ("logits",)

    def __init__(self, total_count: int = 16):
        self.total_count = validation.positive_int(total_count, "total_count")

    def support_bounds(self):
        return {"low": 0.0, "high": float(self.total_count), "integer": True}

    def constants(self):
        return {"total_count": self.total_count}

    @classmethod
    def adapt_recipe(cls, recipe):
        """Binarized data are one trial; raw counts are out of their full scale."""
        return cls._adapt_recipe_to_counts(recipe, lambda largest: {"total_count": largest})

    def numpy_sample(self, params, rng):
        probs = sigmoid(np.asarray(params["logits"], dtype=np.float64))
        return rng.binomial(self.total_count, probs).astype(np.float32)

    def numpy_log_prob(self, x, params):
        n = self.total_count
        logits = np.asarray(params["logits"], dtype=np.float64)
        counts = np.rint(x).astype(np.int64)
        return self._log_choose[counts] + x * log_sigmoid(logits) + (n - x) * log_sigmoid(-logits)

    @functools.cached_property
    def _log_choose(self) -> np.ndarray:
        """`(total_count + 1,)` log C(n, k), k = 0..n: computed once, read per chunk."""
        n = self.total_count
        return np.array(
            [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in range(n + 1)]
        )

    def _distribution(self, params):
        return tfd.Binomial(total_count=float(self.total_count), logits=params["logits"])

    def _support_hint(self):
        return "Hint: pass counts unscaled, or set total_count to the largest count."

    def get_config(self):
        return {"total_count": self.total_count}
