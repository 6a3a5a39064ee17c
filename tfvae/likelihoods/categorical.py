"""The categorical likelihood: each data value is one of a fixed number of levels."""

import numpy as np

from tfvae import dtypes, npmath, validation
from tfvae._lazy import tf, tfd
from tfvae.likelihoods.base import Likelihood, registry


@registry.register("categorical")
class Categorical(Likelihood):
    """Each data value is a level in {0, ..., num_levels - 1}, with decoded logits.

    Mathematical details: log p(x|z) = sum_i log softmax(l_i)[x_i], with l_i the
    `num_levels` logits of data value i. Unlike the binomial, the levels' probabilities
    are free (no unimodal shape): a 256-way softmax per pixel is the likelihood of
    PixelCNN and of van den Oord et al.'s VQ-VAE decoders; the 8x8 digits' 17 grey
    levels are the natural first use. The decoder outputs `num_levels` values per data
    value, laid out `(..., *data_shape, num_levels)`.

    Args:
        num_levels: the number of levels K, an integer >= 2.
    """

    param_names = ("logits",)

    def __init__(self, num_levels: int = 17):
        self.num_levels = validation.positive_int(num_levels, "num_levels")
        if self.num_levels < 2:
            raise ValueError(
                f"Expected num_levels to be an integer >= 2. Received: num_levels={num_levels!r}"
            )

    @property
    def num_params(self):
        return self.num_levels

    def support_bounds(self):
        return {"low": 0.0, "high": float(self.num_levels - 1), "integer": True}

    def constants(self):
        return {"num_levels": self.num_levels}

    @classmethod
    def adapt_recipe(cls, recipe):
        """Binarized data are two levels; raw counts 0..n are n + 1 levels."""
        return cls._adapt_recipe_to_counts(recipe, lambda largest: {"num_levels": largest + 1})

    def numpy_sample(self, params, rng):
        logits = np.asarray(params["logits"], dtype=np.float64)  # [..., K]
        # Inverse CDF per value: the first level whose cumulative probability exceeds u.
        cumulative = np.cumsum(np.exp(npmath.log_softmax(logits)), axis=-1)
        u = rng.random(logits.shape[:-1])[..., None]
        return np.minimum(np.sum(cumulative <= u, axis=-1), self.num_levels - 1).astype(np.float32)

    def numpy_log_prob(self, x, params):
        log_probs = npmath.log_softmax(np.asarray(params["logits"], dtype=np.float64))
        levels = np.broadcast_to(np.rint(x).astype(np.int64), log_probs.shape[:-1])
        return np.take_along_axis(log_probs, levels[..., None], axis=-1)[..., 0]

    def parameters(self, raw):
        """`{"logits": (..., *data_shape, num_levels)}`: the decoder's outputs as they are."""
        return {"logits": dtypes.at_least_float32(raw)}

    def _distribution(self, params):
        return tfd.Categorical(logits=params["logits"], dtype=params["logits"].dtype)

    def mean(self, params):
        """E[x] = sum_k k softmax(l)_k, `(..., *data_shape)`."""
        levels = tf.range(self.num_levels, dtype=params["logits"].dtype)
        return tf.reduce_sum(tf.nn.softmax(params["logits"]) * levels, axis=-1)

    def _support_hint(self):
        return "Hint: pass integer levels 0..num_levels - 1, or raise num_levels."

    def get_config(self):
        return {"num_levels": self.num_levels}
