"""Tests for tfvae.objectives: the ELBO and IWAE losses against numpy and scipy."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from tfvae import objectives

BATCH = 3


def latent_terms(rng, num_samples=5, batch=BATCH):
    log_likelihood = rng.normal(-50.0, 5.0, size=(num_samples, batch))
    log_prior = rng.normal(-4.0, 1.0, size=(num_samples, batch))
    log_posterior = rng.normal(-2.0, 1.0, size=(num_samples, batch))
    kl = rng.uniform(0.0, 10.0, size=(batch,))
    return objectives.LatentTerms(
        *(tf.constant(a, dtype=tf.float32) for a in (log_likelihood, log_prior, log_posterior, kl))
    ), (log_likelihood, log_prior, log_posterior, kl)


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_elbo_loss(rng, beta):
    terms, (log_lik, _, _, kl) = latent_terms(rng)

    loss = objectives.ELBO().loss(terms, beta).numpy()

    np.testing.assert_allclose(loss, -(log_lik.mean(axis=0) - beta * kl), rtol=1e-5)
    np.testing.assert_allclose(terms.elbo.numpy(), log_lik.mean(axis=0) - kl, rtol=1e-5)


def test_iwae_loss(rng):
    terms, (log_lik, log_prior, log_post, _) = latent_terms(rng, num_samples=7)

    loss = objectives.IWAE().loss(terms, 1.0).numpy()

    expected = -(special.logsumexp(log_lik + log_prior - log_post, axis=0) - np.log(7))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_iwae_with_one_sample_is_the_elbo(rng):
    terms, (_, log_prior, log_post, _) = latent_terms(rng, num_samples=1)
    terms = terms._replace(kl=tf.constant((log_post - log_prior)[0], dtype=tf.float32))

    np.testing.assert_allclose(
        objectives.IWAE().loss(terms, 1.0).numpy(),
        objectives.ELBO().loss(terms, 1.0).numpy(),
        rtol=1e-5,
    )


def test_iwae_bound_is_at_least_the_monte_carlo_elbo(rng):
    terms, (_, log_prior, log_post, _) = latent_terms(rng, num_samples=10)
    terms = terms._replace(kl=tf.constant((log_post - log_prior).mean(axis=0), dtype=tf.float32))

    iwae = objectives.IWAE().loss(terms, 1.0).numpy()
    elbo = objectives.ELBO().loss(terms, 1.0).numpy()

    assert np.all(iwae <= elbo + 1e-4)  # Jensen: log mean exp >= mean log
    assert np.any(iwae < elbo - 1e-2)


def test_objective_registry():
    assert objectives.registry.names() == ["elbo", "iwae"]
    assert objectives.get("elbo").uses_beta and not objectives.get("iwae").uses_beta
    with pytest.raises(ValueError, match=r"'elbo', 'iwae'"):
        objectives.get("vae")


@pytest.mark.parametrize("free_bits, beta", [(0.5, 1.0), (2.0, 0.3), (0.0, 1.0)])
def test_free_bits_loss_against_numpy(rng, free_bits, beta):
    terms, (log_lik, _, _, _) = latent_terms(rng, num_samples=4)
    kl_per_dimension = rng.uniform(0.0, 3.0, size=(BATCH, 6))  # some dimensions below 0.5
    terms = terms._replace(
        kl=tf.constant(kl_per_dimension.sum(axis=1), tf.float32),
        kl_per_dimension=tf.constant(kl_per_dimension, tf.float32),
    )

    loss = objectives.ELBO(free_bits=free_bits).loss(terms, beta).numpy()

    # Kingma et al. (2016): sum over dimensions of max(lambda, batch-mean KL_d).
    clamped = np.maximum(free_bits, kl_per_dimension.mean(axis=0)).sum()
    if free_bits == 0.0:
        clamped = kl_per_dimension.sum(axis=1)  # the plain ELBO, per example
    np.testing.assert_allclose(loss, -(log_lik.mean(axis=0) - beta * clamped), rtol=1e-5)


def test_free_bits_is_validated_and_serialized():
    with pytest.raises(ValueError, match=r"free_bits to be a finite number >= 0"):
        objectives.ELBO(free_bits=-1.0)
    restored = objectives.get(
        {
            "module": "tfvae.objectives",
            "class_name": "ELBO",
            "config": {"free_bits": 0.25},
            "registered_name": "tfvae>ELBO",
        }
    )
    assert restored.free_bits == 0.25 and restored.needs_kl_per_dimension


@pytest.mark.parametrize("beta", [0.3, 2.0])
@pytest.mark.parametrize("analytic", [True, False])
def test_elbo_sample_losses_are_the_per_sample_integrand(rng, beta, analytic):
    """-log p(x|z_l), plus beta (log q - log p) when the KL is a Monte Carlo mean; either
    way their mean over samples is the loss, up to the analytic KL, which does not depend
    on the samples."""
    terms, (log_lik, log_prior, log_post, kl) = latent_terms(rng)
    if analytic:
        terms = terms._replace(kl_is_analytic=True)
    else:  # by default, terms say the KL is the Monte Carlo one the model would compute
        assert terms.kl_is_analytic is False
        kl = (log_post - log_prior).mean(axis=0)
        terms = terms._replace(kl=tf.constant(kl, tf.float32))
    losses = objectives.ELBO().sample_losses(terms, beta).numpy()
    expected = -log_lik + (0.0 if analytic else beta * (log_post - log_prior))
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    loss = objectives.ELBO().loss(terms, beta).numpy()
    offset = beta * kl if analytic else 0.0
    np.testing.assert_allclose(losses.mean(axis=0) + offset, loss, rtol=1e-5)


def test_iwae_has_no_per_sample_losses(rng):
    terms, _ = latent_terms(rng)
    with pytest.raises(NotImplementedError, match="couples its samples"):
        objectives.IWAE().sample_losses(terms, 1.0)
