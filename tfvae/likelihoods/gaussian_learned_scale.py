"""The Gaussian likelihood with a decoded per-dimension scale."""

import math

import numpy as np

from tfvae import validation
from tfvae._lazy import tf, tfd
from tfvae.likelihoods.base import FINITE, Likelihood, registry


@registry.register("gaussian_learned_scale")
class GaussianLearnedScale(Likelihood):
    """Gaussian with decoded per-dimension mean and scale.

    Mathematical details: scale = softplus(raw_scale) + min_scale, so the scale stays
    positive and the density bounded (an unbounded Gaussian likelihood makes the ELBO
    diverge on data with constant pixels).

    Args:
        min_scale: the scale floor, in data units (> 0).
    """

    param_names = ("loc", "scale")

    def __init__(self, min_scale: float = 1e-3):
        self.min_scale = validation.positive_float(min_scale, "min_scale")

    def support_bounds(self):
        return dict(FINITE)

    def numpy_sample(self, params, rng):
        loc = params["loc"]
        return (loc + params["scale"] * rng.standard_normal(loc.shape)).astype(np.float32)

    def numpy_log_prob(self, x, params):
        scale = np.asarray(params["scale"], dtype=np.float64)
        standardized = (x - np.asarray(params["loc"], dtype=np.float64)) / scale
        return -0.5 * standardized**2 - np.log(scale) - 0.5 * math.log(2.0 * math.pi)

    def _constrain(self, name, value):
        if name == "scale":
            return tf.math.softplus(value) + self.min_scale
        return value

    def _distribution(self, params):
        return tfd.Normal(loc=params["loc"], scale=params["scale"])

    def get_config(self):
        return {"min_scale": self.min_scale}
