"""Posterior families q(z|x): how encoder outputs become a distribution over latents.

The encoder returns `param_size(latent_dim)` raw values per example. A posterior turns
them into named parameters (`parameters`), into a distribution with batch `(batch_size,)`
and event `(latent_dim,)` (`distribution`), and draws reparameterized samples from
standard normal noise (`reparameterize`); the model supplies the noise so that the same
seed gives the same samples with and without XLA (see `tfvae.random`). The same class
holds the numpy side that the ONNX runtime uses on the exported encoder's outputs
(`numpy_sample`, `numpy_log_prob`). This module imports numpy only; TensorFlow is
imported on first use of a TensorFlow method.

Families (`posterior=` name):
    - `"diagonal_normal"`: N(loc, diag(scale^2)), the amortized posterior of Kingma and
      Welling (2014); 2 * latent_dim encoder outputs.
    - `"full_covariance"`: N(loc, L L^T) with L lower triangular and a positive diagonal;
      latent_dim + latent_dim (latent_dim + 1) / 2 encoder outputs.
"""

from __future__ import annotations

import math

import numpy as np

from tfvae import dtypes, validation
from tfvae._lazy import tf, tfd
from tfvae.registry import Family, Registry

_LOG_2PI = math.log(2.0 * math.pi)


class Posterior(Family):
    """Base class of the posterior families."""

    param_names: tuple[str, ...] = ()

    def __init__(self, min_scale: float = 1e-4):
        self.min_scale = validation.positive_float(min_scale, "min_scale")

    @property
    def scale_name(self) -> str:
        """The parameter that holds the spread: `scale` or `scale_tril`."""
        return self.param_names[1]

    def numpy_sample(self, params: dict, num_samples: int, rng) -> np.ndarray:
        """Draws `(num_samples, n, latent_dim)` z ~ q in numpy (float64) from the named
        parameters of n examples, as the exported encoder outputs them."""
        noise = rng.standard_normal((num_samples, *np.shape(params["loc"])))
        return self.numpy_reparameterize(params, noise)

    def numpy_reparameterize(self, params: dict, noise: np.ndarray) -> np.ndarray:
        """`reparameterize` in numpy: noise `(L, n, latent_dim)` -> z, float64."""
        raise NotImplementedError

    def numpy_log_prob(self, z: np.ndarray, params: dict) -> np.ndarray:
        """log q(z|x) in numpy for z `(L, n, latent_dim)`: `(L, n)` float64 nats."""
        raise NotImplementedError

    def param_size(self, latent_dim: int) -> int:
        """Encoder outputs needed per example for a `latent_dim`-dimensional posterior."""
        raise NotImplementedError

    def parameters(self, raw: tf.Tensor, latent_dim: int) -> dict[str, tf.Tensor]:
        """Maps raw encoder outputs `(batch_size, param_size)` to named float32 parameters
        (float64 when the encoder computes in float64)."""
        raise NotImplementedError

    def distribution(self, params: dict) -> tfd.Distribution:
        """q(z|x) with batch shape `(batch_size,)` and event shape `(latent_dim,)`."""
        raise NotImplementedError

    def reparameterize(self, params: dict, noise: tf.Tensor) -> tf.Tensor:
        """Maps standard normal `noise` `(num_samples, batch_size, latent_dim)` to z ~ q."""
        raise NotImplementedError

    def marginals(self, params: dict) -> tfd.Distribution | None:
        """q(z_d|x) of each dimension, batch `(batch_size, latent_dim)`, when q factorizes
        over dimensions (so per-dimension KLs sum to the KL); else None."""
        return None

    def _positive(self, raw: tf.Tensor) -> tf.Tensor:
        return tf.math.softplus(raw) + self.min_scale

    def get_config(self) -> dict:
        return {"min_scale": self.min_scale}


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
        raw = dtypes.at_least_float32(raw)  # float32 under mixed precision, float64 kept
        return {"loc": raw[:, :latent_dim], "scale": self._positive(raw[:, latent_dim:])}

    def distribution(self, params):
        return tfd.MultivariateNormalDiag(loc=params["loc"], scale_diag=params["scale"])

    def reparameterize(self, params, noise):
        return params["loc"] + params["scale"] * noise

    def numpy_reparameterize(self, params, noise):
        scale = np.asarray(params["scale"], dtype=np.float64)
        return np.asarray(params["loc"], dtype=np.float64) + scale * noise

    def numpy_log_prob(self, z, params):
        scale = np.asarray(params["scale"], dtype=np.float64)
        standardized = (z - np.asarray(params["loc"], dtype=np.float64)) / scale
        return np.sum(-0.5 * standardized**2 - np.log(scale) - 0.5 * _LOG_2PI, axis=-1)

    def marginals(self, params):
        return tfd.Normal(loc=params["loc"], scale=params["scale"])


@registry.register("full_covariance")
class FullCovariance(Posterior):
    """Gaussian with a full covariance through its Cholesky factor.

    Mathematical details: z = loc + L eps, eps ~ N(0, I), with L = `scale_tril` lower
    triangular. The encoder's `D + D (D + 1) / 2` outputs are laid out as
    `[loc (D) | raw diagonal (D) | strictly lower entries (D (D - 1) / 2), row by row]`;
    diag(L) = softplus(raw diagonal) + min_scale. Against N(0, I) the KL is
    1/2 (||loc||^2 + ||L||_F^2 - D - 2 sum log diag(L)). Built from gathers and products
    only, so the encoder converts to ONNX.

    Args:
        min_scale: floor on the diagonal of the Cholesky factor (> 0).
    """

    param_names = ("loc", "scale_tril")

    def param_size(self, latent_dim):
        return latent_dim + latent_dim * (latent_dim + 1) // 2

    def parameters(self, raw, latent_dim):
        raw = dtypes.at_least_float32(raw)  # float32 under mixed precision, float64 kept
        loc = raw[:, :latent_dim]
        diagonal = self._positive(raw[:, latent_dim : 2 * latent_dim])  # [B, D]
        off_diagonal = raw[:, 2 * latent_dim :]  # [B, D (D - 1) / 2]
        # Entry (i, j) of L reads column index[i, j] of [0 | off_diagonal]: 0 above the
        # diagonal and on it (the diagonal is added below), 1 + k for the k-th lower entry.
        index = np.zeros((latent_dim, latent_dim), dtype=np.int32)
        rows, columns = np.tril_indices(latent_dim, k=-1)
        index[rows, columns] = 1 + np.arange(len(rows))
        padded = tf.concat([tf.zeros_like(off_diagonal[:, :1]), off_diagonal], axis=1)
        lower = tf.gather(padded, index, axis=1)  # [B, D, D]
        scale_tril = lower + diagonal[:, :, None] * tf.eye(latent_dim, dtype=raw.dtype)
        return {"loc": loc, "scale_tril": scale_tril}

    def distribution(self, params):
        return tfd.MultivariateNormalTriL(loc=params["loc"], scale_tril=params["scale_tril"])

    def reparameterize(self, params, noise):
        return params["loc"] + tf.einsum("bij,lbj->lbi", params["scale_tril"], noise)

    def numpy_reparameterize(self, params, noise):
        scale_tril = np.asarray(params["scale_tril"], dtype=np.float64)
        loc = np.asarray(params["loc"], dtype=np.float64)
        return loc + np.einsum("bij,lbj->lbi", scale_tril, noise)

    def numpy_log_prob(self, z, params):
        scale_tril = np.asarray(params["scale_tril"], dtype=np.float64)  # [n, D, D]
        centred = z - np.asarray(params["loc"], dtype=np.float64)  # [L, n, D]
        # eps = L^-1 (z - loc), solved per example: [n, D, D] against [n, D, L].
        eps = np.linalg.solve(scale_tril, np.moveaxis(centred, 0, -1))  # [n, D, L]
        log_det = np.sum(np.log(np.abs(np.diagonal(scale_tril, axis1=1, axis2=2))), axis=-1)
        dim = scale_tril.shape[-1]
        quadratic = np.sum(eps**2, axis=1).T  # [L, n]
        return -0.5 * quadratic - log_det - 0.5 * dim * _LOG_2PI


def get(identifier) -> Posterior:
    """Resolves a posterior name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier)
