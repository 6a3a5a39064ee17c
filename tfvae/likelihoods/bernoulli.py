"""The Bernoulli likelihood: binary pixels, or grey levels as the cross-entropy objective."""

import numpy as np

from tfvae._lazy import tfd
from tfvae.likelihoods.base import (
    UNIT_HINT,
    UNIT_INTERVAL,
    Likelihood,
    registry,
)
from tfvae.npmath import log_sigmoid, sigmoid


@registry.register("bernoulli")
class Bernoulli(Likelihood):
    """Bernoulli pixels parameterized by logits.

    Mathematical details: log p(x|z) = sum_i x_i log s(l_i) + (1 - x_i) log(1 - s(l_i)),
    with s the logistic sigmoid and l the logits. For x in {0, 1} this is a normalized
    likelihood; for grey levels in [0, 1] it is the cross-entropy objective (use
    `continuous_bernoulli` for a normalized density on [0, 1]).
    """

    param_names = ("logits",)

    def support_bounds(self):
        # [0, 1], not {0, 1}: grey levels are accepted (the cross-entropy objective).
        return dict(UNIT_INTERVAL)

    @classmethod
    def adapt_recipe(cls, recipe):
        """Intensities in [0, 1], binarized dynamically unless the recipe binarizes."""
        binarize = recipe.binarize or "dynamic"
        return {"scale": recipe.full_scale, "binarize": binarize, "data_range": (0.0, 1.0)}

    def numpy_sample(self, params, rng):
        probs = sigmoid(params["logits"])
        return (rng.random(probs.shape) < probs).astype(np.float32)

    def numpy_log_prob(self, x, params):
        logits = np.asarray(params["logits"], dtype=np.float64)
        return x * log_sigmoid(logits) + (1.0 - x) * log_sigmoid(-logits)

    def _distribution(self, params):
        return tfd.Bernoulli(logits=params["logits"], dtype=params["logits"].dtype)

    def _support_hint(self):
        return UNIT_HINT
