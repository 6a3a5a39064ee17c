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
    - `"hierarchical"`: p(z) = integral p(z|u) p(u) du, a layer of latents u above z; its
      parameters are the exported networks of p(z|u) and q(u|z), their families and
      p(u) (see `Hierarchical`).
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
    #: Whether p(z) integrates over latents of its own, so that its density is estimated.
    has_latents: bool = False

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

    def numpy_log_prob(self, z: np.ndarray, params: dict, rng=None) -> np.ndarray:
        """log p(z) of z `(..., latent_dim)`: `z.shape[:-1]` float64 nats.

        A family with latents of its own (`has_latents`) returns a one-draw importance
        estimate instead, drawn with the numpy generator `rng` (see `Hierarchical`).
        """
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

    def numpy_log_prob(self, z, params, rng=None):
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

    def numpy_log_prob(self, z, params, rng=None):
        log_weights, locs, scales = self._arrays(params)
        z = np.asarray(z, dtype=np.float64)[..., None, :]  # [..., 1, D]
        per_component = log_weights + _diagonal_normal_log_prob(z, locs, scales)  # [..., K]
        return npmath.logsumexp(per_component, axis=-1)


@registry.register("hierarchical")
class Hierarchical(PriorFamily):
    """p(z) = integral p(z|u) p(u) du, with latents u one layer up (Burda et al. 2015).

    Mathematical details: a draw takes u ~ p(u), then z ~ p(z|u). The density has no
    closed form; log p(z|u) + log p(u) - log q(u|z) at one u ~ q(u|z) estimates it, and
    its exponential is unbiased for p(z), so that in the importance weights of a
    two-layer model, p(x|z1) p(z1|z2) p(z2) / (q(z1|x) q(z2|z1)), it stands for log p(z1).
    p(u) may be hierarchical itself: a deeper chain.

    The parameters are not arrays but what the runtime assembles from the bundle:
        `upper_dim`: the size of u.
        `decoder`: u `(n, upper_dim)` float32 -> p(z|u)'s named parameters (a network).
        `encoder`: z `(n, latent_dim)` float32 -> q(u|z)'s named parameters (a network);
            needed by `numpy_log_prob` only.
        `conditional`, `posterior`: the `tfvae.posteriors` families of p(z|u) and q(u|z).
        `prior`: `(family, parameters)` of p(u).
    """

    has_latents = True

    def numpy_sample(self, n, latent_dim, params, temperature, rng):
        family, upper_params = params["prior"]
        u = family.numpy_sample(n, params["upper_dim"], upper_params, temperature, rng)
        conditional = params["decoder"](u.astype(np.float32))  # [n, D] each
        noise = temperature * rng.standard_normal((1, n, latent_dim))
        return params["conditional"].numpy_reparameterize(conditional, noise)[0]

    def numpy_log_prob(self, z, params, rng=None):
        if rng is None:
            raise ValueError(
                "The hierarchical prior's density is estimated by a draw of its latents: "
                "pass rng=, a numpy random generator."
            )
        z = np.asarray(z, dtype=np.float64)
        rows = z.reshape(-1, z.shape[-1])  # [N, D]
        posterior = params["encoder"](rows.astype(np.float32))  # q(u|z), [N, U] each
        u = params["posterior"].numpy_sample(posterior, 1, rng)  # [1, N, U]
        family, upper_params = params["prior"]
        log_upper = family.numpy_log_prob(u[0], upper_params, rng)  # [N]
        conditional = params["decoder"](u[0].astype(np.float32))  # p(z|u)
        log_conditional = params["conditional"].numpy_log_prob(rows[None], conditional)[0]
        log_posterior = params["posterior"].numpy_log_prob(u, posterior)[0]
        return (log_conditional + log_upper - log_posterior).reshape(z.shape[:-1])
