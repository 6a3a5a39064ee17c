"""The Gaussian likelihood with a fixed scale: the squared error, as a density."""

import math

import numpy as np

from tfvae import validation
from tfvae._lazy import tfd
from tfvae.likelihoods.base import FINITE, Likelihood, registry


@registry.register("gaussian")
class Gaussian(Likelihood):
    """Gaussian with decoded mean and a fixed scale (the "MSE" view).

    Mathematical details: -log p(x|z) = ||x - loc||^2 / (2 scale^2)
    + D log(scale sqrt(2 pi)), with D the number of data dimensions.

    Args:
        scale: the fixed standard deviation, in data units (> 0).
    """

    param_names = ("loc",)

    def __init__(self, scale: float = 1.0):
        self.scale = validation.positive_float(scale, "scale")

    def support_bounds(self):
        return dict(FINITE)

    def constants(self):
        return {"scale": self.scale}

    def numpy_sample(self, params, rng):
        loc = params["loc"]
        return (loc + self.scale * rng.standard_normal(loc.shape)).astype(np.float32)

    def numpy_log_prob(self, x, params):
        standardized = (x - np.asarray(params["loc"], dtype=np.float64)) / self.scale
        return -0.5 * standardized**2 - math.log(self.scale * math.sqrt(2.0 * math.pi))

    def _distribution(self, params):
        return tfd.Normal(loc=params["loc"], scale=self.scale)

    def get_config(self):
        return {"scale": self.scale}
