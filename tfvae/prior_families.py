"""What each prior family's exported parameters mean, in numpy: draws and densities of z.

A prior p(z) is a Keras layer on the training side (`tfvae.priors`), since a learnable
prior holds weights. Each layer class derives from its family here, which owns what the
runtime needs to know: the name (the registry's), the names of the parameters the export
writes into the manifest (`param_names`), and numpy `numpy_sample` and `numpy_log_prob`
of those parameters. This module imports numpy only.

Families (`prior=` name):
    - `"standard_normal"`: N(0, I); no parameters.
    - `"mixture"`: sum_k pi_k N(z; mu_k, diag(sigma_k^2)), with parameters `logits`
      (K,), `locs` (K, latent_dim) and `scales` (K, latent_dim).
"""

import math

import numpy as np

from tfvae import npmath
from tfvae.registry import Registry

_LOG_2PI = math.log(2.0 * math.pi)


class PriorFamily:
    """Base class: the numpy side of a prior family, a function of its parameters."""

    family: str = ""  # the registered name, set by the registry
    param_names: tuple[str, ...] = ()

    def numpy_sample(self, n: int, latent_dim: int, params: dict, temperature, rng):
        """Draws `(n, latent_dim)` float64 z ~ p(z); `temperature` scales the spread.

        Args:
            n: the number of draws.
            latent_dim: the size of z.
            params: the prior's parameters as the manifest records them (lists or
                arrays), named as `param_names`.
            temperature: multiplies the (component) standard deviations, > 0.
            rng: a numpy random generator.
        """
        raise NotImplementedError

    def numpy_log_prob(self, z: np.ndarray, params: dict) -> np.ndarray:
        """log p(z) of z `(..., latent_dim)`: `z.shape[:-1]` float64 nats."""
        raise NotImplementedError


registry = Registry("prior", PriorFamily, serializable=False)


def _diagonal_normal_log_prob(z, loc, scale) -> np.ndarray:
    """log N(z; loc, diag(scale^2)) summed over the last axis."""
    standardized = (z - loc) / scale
    return np.sum(-0.5 * standardized**2 - np.log(scale) - 0.5 * _LOG_2PI, axis=-1)


@registry.register("standard_normal")
class StandardNormal(PriorFamily):
    """The standard normal N(0, I)."""

    def numpy_sample(self, n, latent_dim, params, temperature, rng):
        return temperature * rng.standard_normal((n, latent_dim))

    def numpy_log_prob(self, z, params):
        z = np.asarray(z, dtype=np.float64)
        return _diagonal_normal_log_prob(z, 0.0, 1.0)


@registry.register("mixture")
class Mixture(PriorFamily):
    """A mixture of K diagonal Gaussians with weights softmax(logits)."""

    param_names = ("logits", "locs", "scales")

    @staticmethod
    def _arrays(params):
        log_weights = npmath.log_softmax(np.asarray(params["logits"], dtype=np.float64))  # [K]
        locs = np.asarray(params["locs"], dtype=np.float64)  # [K, D]
        scales = np.asarray(params["scales"], dtype=np.float64)  # [K, D]
        return log_weights, locs, scales

    def numpy_sample(self, n, latent_dim, params, temperature, rng):
        log_weights, locs, scales = self._arrays(params)
        components = rng.choice(len(log_weights), size=n, p=np.exp(log_weights))
        noise = rng.standard_normal((n, latent_dim))
        return locs[components] + temperature * scales[components] * noise

    def numpy_log_prob(self, z, params):
        log_weights, locs, scales = self._arrays(params)
        z = np.asarray(z, dtype=np.float64)[..., None, :]  # [..., 1, D]
        per_component = log_weights + _diagonal_normal_log_prob(z, locs, scales)  # [..., K]
        return npmath.logsumexp(per_component, axis=-1)
