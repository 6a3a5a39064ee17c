"""Prior families p(z). Priors are Keras layers so that learnable ones train and save.

The model builds its prior with `prior.build((latent_dim,))`. Each layer class derives
from its family in `tfvae.prior_families`, which owns its name, its exported parameters'
names and its numpy sampler (what the ONNX runtime needs).

Families (`prior=` name):
    - `"standard_normal"`: N(0, I), the default; KL to a Gaussian posterior is analytic.
    - `"mixture"`: a learnable mixture of diagonal Gaussians (`tfd.MixtureSameFamily`);
      the KL has no closed form and is estimated by Monte Carlo.
"""

import math

import tfvae._backend  # noqa: F401

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import dtypes, prior_families, random, validation
from tfvae.registry import Registry

tfd = tfp.distributions


class Prior(keras.layers.Layer):
    """Base class of the priors: a layer whose `distribution()` is p(z), event `(latent_dim,)`."""

    def build(self, input_shape):
        self.latent_dim = validation.positive_int(input_shape[-1], "latent_dim")

    def distribution(self) -> tfd.Distribution:
        """p(z), with batch shape `()` and event shape `(latent_dim,)`."""
        raise NotImplementedError

    def parameters(self) -> dict[str, np.ndarray]:
        """The prior's constrained parameters as arrays, named as `param_names`, for the
        manifest and the runtime."""
        return {}

    def marginals(self) -> tfd.Distribution | None:
        """p(z_d) of each dimension, batch `(latent_dim,)`, when p factorizes over
        dimensions (so per-dimension KLs sum to the KL); else None."""
        return None

    def sample(self, num_samples, seed) -> tf.Tensor:
        """Draws `(num_samples, latent_dim)` latents from a stateless `(2,)` seed."""
        return self.distribution().sample(num_samples, seed=tf.cast(seed, tf.int32))


registry = Registry("prior", Prior)


@registry.register(prior_families.StandardNormal.family)
class StandardNormal(prior_families.StandardNormal, Prior):
    """The standard normal prior N(0, I)."""

    def distribution(self):
        zeros = tf.zeros([self.latent_dim], dtypes.log_prob_dtype(self.compute_dtype))
        return tfd.MultivariateNormalDiag(loc=zeros, scale_diag=tf.ones_like(zeros))

    def sample(self, num_samples, seed):
        dtype = dtypes.log_prob_dtype(self.compute_dtype)
        return random.standard_normal([num_samples, self.latent_dim], seed, dtype=dtype)

    def marginals(self):
        zeros = tf.zeros([self.latent_dim], dtypes.log_prob_dtype(self.compute_dtype))
        return tfd.Normal(loc=zeros, scale=tf.ones_like(zeros))


@registry.register(prior_families.Mixture.family)
class Mixture(prior_families.Mixture, Prior):
    """A learnable mixture of `num_components` diagonal Gaussians.

    Mathematical details: p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)) with
    pi = softmax(logits) and sigma = softplus(raw_scale) + min_scale; the component
    means start as draws from N(0, I) and the scales at 1 (to float32 rounding).

    Args:
        num_components: the number of mixture components K (>= 1).
        min_scale: floor on the component standard deviations (> 0).
        seed: seed for the initial component means.
    """

    def __init__(self, num_components: int = 10, min_scale: float = 1e-3, seed=None, **kwargs):
        self.num_components = validation.positive_int(num_components, "num_components")
        self.min_scale = validation.positive_float(min_scale, "min_scale")
        if self.min_scale >= 1.0:
            raise ValueError(
                "Expected min_scale < 1: the component scales start at 1. "
                f"Received: min_scale={min_scale!r}"
            )
        self.seed = validation.optional_seed(seed)
        super().__init__(**kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        shape = (self.num_components, self.latent_dim)
        self.logits = self.add_weight(
            shape=(self.num_components,), initializer="zeros", name="logits"
        )
        self.locs = self.add_weight(
            shape=shape,
            # N(0, I), as documented: Keras's RandomNormal defaults to stddev=0.05.
            initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            name="locs",
        )
        self.raw_scales = self.add_weight(
            shape=shape,
            # softplus(raw) + min_scale = 1 at initialization.
            initializer=keras.initializers.Constant(math.log(math.expm1(1.0 - self.min_scale))),
            name="raw_scales",
        )

    def _scales(self) -> tf.Tensor:
        return tf.math.softplus(dtypes.at_least_float32(self.raw_scales)) + self.min_scale

    def distribution(self):
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=dtypes.at_least_float32(self.logits)),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=dtypes.at_least_float32(self.locs), scale_diag=self._scales()
            ),
        )

    def parameters(self):
        """`logits` `(K,)`, `locs` `(K, latent_dim)` and `scales` `(K, latent_dim)`."""
        return {
            "logits": np.asarray(self.logits, dtype=np.float32),
            "locs": np.asarray(self.locs, dtype=np.float32),
            "scales": np.asarray(self._scales()),
        }

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, min_scale=self.min_scale, seed=self.seed)
        return config


def get(identifier) -> Prior:
    """Resolves a prior name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier)
