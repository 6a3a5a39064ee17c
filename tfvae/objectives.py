"""Training objectives: per-example losses built from one set of Monte Carlo terms.

The model evaluates, once per step, the log densities of `num_samples` reparameterized
latents per example (`LatentTerms`); an objective turns them into the per-example loss
whose gradient trains the model. Every reported quantity (ELBO, reconstruction, KL) comes
from the same terms, so `train_step`, `test_step` and evaluation agree by construction.

Objectives (`objective=` name):
    - `"elbo"`: -(E_q[log p(x|z)] - beta KL(q(z|x) || p(z))), Kingma and Welling (2014),
      optionally with free bits (`ELBO(free_bits=lambda)`, Kingma et al. 2016).
    - `"iwae"`: -log (1/L) sum_l p(x, z_l) / q(z_l|x), the importance-weighted bound of
      Burda, Grosse and Salakhutdinov (2015); tighter than the ELBO for L > 1.
"""

from __future__ import annotations

from typing import NamedTuple

from tfvae import validation
from tfvae._lazy import tf
from tfvae.registry import Family, Registry


class LatentTerms(NamedTuple):
    """Log densities at `num_samples` latents per example, z_l ~ q(z|x).

    Attributes:
        log_likelihood: `(num_samples, batch_size)` log p(x | z_l), nats.
        log_prior: `(num_samples, batch_size)` log p(z_l), nats.
        log_posterior: `(num_samples, batch_size)` log q(z_l | x), nats.
        kl: `(batch_size,)` KL(q(z|x) || p(z)), analytic where TFP registers one,
            else the Monte Carlo mean of log q - log p over the same samples.
        kl_per_dimension: `(batch_size, latent_dim)` KL(q(z_d|x) || p(z_d)) of each latent
            dimension, summing to `kl`, when q and p both factorize over dimensions;
            else None.
        kl_is_analytic: whether `kl` (and `kl_per_dimension`) are closed forms, which do
            not depend on the samples, rather than Monte Carlo means over them.
    """

    log_likelihood: tf.Tensor
    log_prior: tf.Tensor
    log_posterior: tf.Tensor
    kl: tf.Tensor
    kl_per_dimension: tf.Tensor | None = None
    kl_is_analytic: bool = False

    @property
    def reconstruction(self) -> tf.Tensor:
        """`(batch_size,)` Monte Carlo estimate of E_q[log p(x|z)]."""
        return tf.reduce_mean(self.log_likelihood, axis=0)

    @property
    def elbo(self) -> tf.Tensor:
        """`(batch_size,)` evidence lower bound, reconstruction - KL."""
        return self.reconstruction - self.kl

    @property
    def log_weights(self) -> tf.Tensor:
        """`(num_samples, batch_size)` importance log-weights log p(x, z_l) - log q(z_l|x)."""
        return self.log_likelihood + self.log_prior - self.log_posterior

    def importance_weighted_bound(self) -> tf.Tensor:
        """`(batch_size,)` log (1/L) sum_l exp(log_weights): the IWAE bound, nats."""
        num_samples = tf.cast(tf.shape(self.log_weights)[0], self.log_weights.dtype)
        return tf.reduce_logsumexp(self.log_weights, axis=0) - tf.math.log(num_samples)


class Objective(Family):
    """Base class: maps `LatentTerms` to a `(batch_size,)` loss to minimize."""

    #: Whether the objective weights the KL by `beta` (the model rejects beta != 1 if not).
    uses_beta: bool = True
    #: Whether the loss reads `LatentTerms.kl_per_dimension` (factorized q and p only).
    needs_kl_per_dimension: bool = False

    def loss(self, terms: LatentTerms, beta) -> tf.Tensor:
        """The `(batch_size,)` loss; `beta` is the KL weight, a float or scalar tensor."""
        raise NotImplementedError

    def sample_losses(self, terms: LatentTerms, beta) -> tf.Tensor:
        """`(num_samples, batch_size)` per-sample losses l_l, each a function of its own
        z_l only, whose mean over samples is `loss` up to terms that do not depend on the
        samples: the learning signal of a score-function estimator.

        Raises:
            NotImplementedError: for an objective that couples its samples (IWAE).
        """
        raise NotImplementedError(f"The {self.family!r} objective couples its samples.")


registry = Registry("objective", Objective)


@registry.register("elbo")
class ELBO(Objective):
    """The negative (beta-weighted) evidence lower bound, optionally with free bits.

    Mathematical details: loss = -(E_q[log p(x|z)] - beta KL(q || p)); beta = 1 is the
    ELBO, beta > 1 the beta-VAE of Higgins et al. (2017). With free bits lambda > 0
    (Kingma et al. 2016) the KL term becomes sum_d max(lambda, mean_batch KL_d), where
    KL_d = KL(q(z_d|x) || p(z_d)) is averaged over the (per-replica) batch: a dimension
    whose average KL is below lambda nats costs lambda and gets no gradient from the KL,
    so the encoder is not pushed to collapse it onto the prior. The same batch-level
    term is added to every example's loss.

    Args:
        free_bits: lambda, nats per latent dimension (>= 0; 0 is the plain ELBO). Needs a
            posterior and prior that factorize over dimensions (diagonal normal, standard
            normal).
    """

    def __init__(self, free_bits: float = 0.0):
        self.free_bits = validation.non_negative_float(free_bits, "free_bits")
        self.needs_kl_per_dimension = self.free_bits > 0

    def loss(self, terms, beta):
        kl = terms.kl
        if self.free_bits > 0:
            batch_kl = tf.reduce_mean(terms.kl_per_dimension, axis=0)  # [D]
            clamped = tf.reduce_sum(tf.maximum(batch_kl, self.free_bits))  # []
            kl = tf.broadcast_to(clamped, tf.shape(terms.kl))  # [B]
        return -(terms.reconstruction - tf.cast(beta, kl.dtype) * kl)

    def sample_losses(self, terms, beta):
        """-log p(x|z_l), plus beta (log q(z_l|x) - log p(z_l)) when the KL is a Monte
        Carlo mean over the same samples. Free bits with a Monte Carlo KL couple the
        batch's samples and are not covered (`ScoreFunction.check` refuses them)."""
        losses = -terms.log_likelihood  # [L, B]
        if not terms.kl_is_analytic:
            beta = tf.cast(beta, losses.dtype)
            losses += beta * (terms.log_posterior - terms.log_prior)
        return losses

    def get_config(self):
        return {"free_bits": self.free_bits}


@registry.register("iwae")
class IWAE(Objective):
    """The negative importance-weighted bound of Burda et al. (2015).

    Mathematical details: loss = -log (1/L) sum_l p(x|z_l) p(z_l) / q(z_l|x) with
    L = num_samples. For L = 1 it is the single-sample ELBO with a Monte Carlo KL (equal to
    the `elbo` loss in expectation); its expectation tightens as L grows.
    """

    uses_beta = False

    def loss(self, terms, beta):
        return -terms.importance_weighted_bound()


def get(identifier) -> Objective:
    """Resolves an objective name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier)
