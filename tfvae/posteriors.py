"""Posterior families q(z|x): how encoder outputs become a distribution over latents.

The encoder returns `param_size(latent_dim)` raw values per example. A posterior turns
them into named parameters (`parameters`), into a distribution with batch `(batch_size,)`
and event `(latent_dim,)` (`distribution`), and draws reparameterized samples from
standard normal noise (`reparameterize`); the model supplies the noise so that the same
seed gives the same samples with and without XLA (see `tfvae.random`).

Families (`posterior=` name):
    - `"diagonal_normal"`: N(loc, diag(scale^2)), the amortized posterior of Kingma and
      Welling (2014); 2 * latent_dim encoder outputs.
    - `"full_covariance"`: N(loc, L L^T) with L lower triangular and a positive diagonal;
      latent_dim + latent_dim (latent_dim + 1) / 2 encoder outputs.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import validation
from tfvae.registry import Registry

tfb = tfp.bijectors
tfd = tfp.distributions


class Posterior:
    """Base class of the posterior families."""

    name: str = ""
    param_names: tuple[str, ...] = ()

    def __init__(self, min_scale: float = 1e-4):
        self.min_scale = validation.positive_float(min_scale, "min_scale")

    def param_size(self, latent_dim: int) -> int:
        """Encoder outputs needed per example for a `latent_dim`-dimensional posterior."""
        raise NotImplementedError

    def parameters(self, raw: tf.Tensor, latent_dim: int) -> dict[str, tf.Tensor]:
        """Maps raw encoder outputs `(batch_size, param_size)` to named float32 parameters."""
        raise NotImplementedError

    def distribution(self, params: dict) -> tfd.Distribution:
        """q(z|x) with batch shape `(batch_size,)` and event shape `(latent_dim,)`."""
        raise NotImplementedError

    def reparameterize(self, params: dict, noise: tf.Tensor) -> tf.Tensor:
        """Maps standard normal `noise` `(num_samples, batch_size, latent_dim)` to z ~ q."""
        raise NotImplementedError

    def _positive(self, raw: tf.Tensor) -> tf.Tensor:
        return tf.math.softplus(raw) + self.min_scale

    def get_config(self) -> dict:
        return {"min_scale": self.min_scale}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_scale={self.min_scale!r})"


registry = Registry("posterior", Posterior)


@registry.register("diagonal_normal")
class DiagonalNormal(Posterior):
    """Gaussian with diagonal covariance.

    Mathematical details: z = loc + scale * eps, eps ~ N(0, I); scale = softplus(raw) +
    min_scale. Against N(0, I) the KL is 1/2 sum(loc^2 + scale^2 - 1 - log scale^2).

    Args:
        min_scale: floor on the standard deviations (> 0).
    """

    param_names = ("loc", "scale")

    def param_size(self, latent_dim):
        return 2 * latent_dim

    def parameters(self, raw, latent_dim):
        raw = tf.cast(raw, tf.float32)
        return {"loc": raw[:, :latent_dim], "scale": self._positive(raw[:, latent_dim:])}

    def distribution(self, params):
        return tfd.MultivariateNormalDiag(loc=params["loc"], scale_diag=params["scale"])

    def reparameterize(self, params, noise):
        return params["loc"] + params["scale"] * noise


@registry.register("full_covariance")
class FullCovariance(Posterior):
    """Gaussian with a full covariance through its Cholesky factor.

    Mathematical details: z = loc + L eps, eps ~ N(0, I), with L = `scale_tril` lower
    triangular, its diagonal softplus(raw) + min_scale. Against N(0, I) the KL is
    1/2 (||loc||^2 + ||L||_F^2 - D - 2 sum log diag(L)).

    Args:
        min_scale: floor on the diagonal of the Cholesky factor (> 0).
    """

    param_names = ("loc", "scale_tril")

    def param_size(self, latent_dim):
        return latent_dim + latent_dim * (latent_dim + 1) // 2

    def parameters(self, raw, latent_dim):
        raw = tf.cast(raw, tf.float32)
        fill = tfb.FillScaleTriL(
            diag_bijector=tfb.Chain([tfb.Shift(self.min_scale), tfb.Softplus()]), diag_shift=None
        )
        return {"loc": raw[:, :latent_dim], "scale_tril": fill.forward(raw[:, latent_dim:])}

    def distribution(self, params):
        return tfd.MultivariateNormalTriL(loc=params["loc"], scale_tril=params["scale_tril"])

    def reparameterize(self, params, noise):
        return params["loc"] + tf.einsum("bij,lbj->lbi", params["scale_tril"], noise)


def get(identifier) -> Posterior:
    """Resolves a posterior name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier, argument="posterior")
