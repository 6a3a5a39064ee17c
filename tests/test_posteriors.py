"""Tests for tfvae.posteriors.

Every quantity is compared with an independent computation: numpy closed forms for the
KL divergences, scipy for densities, and Monte Carlo estimates checked within a few
standard errors.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tests.helpers import (
    BATCH,
    LATENT_DIM,
    NUM_MC,
    NUM_SE,
    posterior_params,
    seed,
    softplus,
)
from tfvae import posteriors, priors, random

tfd = tfp.distributions


def covariance(posterior, params):
    """Sigma `(batch, D, D)` of q in float64, from the named parameters."""
    if isinstance(posterior, posteriors.DiagonalNormal):
        return np.stack([np.diag(s**2) for s in params["scale"].numpy().astype(np.float64)])
    tril = params["scale_tril"].numpy().astype(np.float64)
    return tril @ np.swapaxes(tril, -1, -2)


def closed_form_kl_to_standard_normal(loc, sigma):
    """KL(N(loc, Sigma) || N(0, I)) = 1/2 (||loc||^2 + tr Sigma - D - log det Sigma)."""
    _, logdet = np.linalg.slogdet(sigma)
    trace = np.trace(sigma, axis1=-2, axis2=-1)
    return 0.5 * (np.sum(loc**2, axis=-1) + trace - loc.shape[-1] - logdet)


def standard_normal_prior(latent_dim=LATENT_DIM):
    prior = priors.StandardNormal()
    prior.build((latent_dim,))
    return prior


POSTERIORS = [posteriors.DiagonalNormal(), posteriors.FullCovariance()]


@pytest.mark.parametrize(
    ("posterior", "size"),
    [
        (posteriors.DiagonalNormal(), lambda d: 2 * d),
        (posteriors.FullCovariance(), lambda d: d + d * (d + 1) // 2),
    ],
    ids=["diagonal", "full"],
)
@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_param_size(posterior, size, latent_dim):
    assert posterior.param_size(latent_dim) == size(latent_dim)


def test_diagonal_parameters_split_raw_outputs(rng):
    posterior = posteriors.DiagonalNormal(min_scale=1e-3)
    raw, params = posterior_params(rng, posterior)

    assert set(params) == set(posterior.param_names) == {"loc", "scale"}
    assert params["loc"].shape == params["scale"].shape == (BATCH, LATENT_DIM)
    np.testing.assert_array_equal(params["loc"].numpy(), raw[:, :LATENT_DIM])
    np.testing.assert_allclose(
        params["scale"].numpy(), softplus(raw[:, LATENT_DIM:]) + 1e-3, rtol=1e-6
    )


def test_full_covariance_parameters_split_raw_outputs(rng):
    min_scale = 0.25
    posterior = posteriors.FullCovariance(min_scale=min_scale)
    raw = rng.normal(size=(BATCH, posterior.param_size(LATENT_DIM))).astype(np.float32)
    raw[:, LATENT_DIM:] -= 2.0  # push some diagonal entries towards the floor
    params = posterior.parameters(tf.constant(raw), LATENT_DIM)

    assert set(params) == set(posterior.param_names) == {"loc", "scale_tril"}
    assert params["loc"].shape == (BATCH, LATENT_DIM)
    assert params["scale_tril"].shape == (BATCH, LATENT_DIM, LATENT_DIM)
    np.testing.assert_array_equal(params["loc"].numpy(), raw[:, :LATENT_DIM])
    tril = params["scale_tril"].numpy().astype(np.float64)
    np.testing.assert_array_equal(np.triu(tril, k=1), 0.0)
    diag = np.diagonal(tril, axis1=-2, axis2=-1)
    assert np.all(diag >= min_scale)
    # The documented layout: [loc | raw diagonal | strictly lower entries, row by row].
    np.testing.assert_allclose(
        diag, softplus(raw[:, LATENT_DIM : 2 * LATENT_DIM]) + min_scale, rtol=1e-6
    )
    rows, cols = np.tril_indices(LATENT_DIM, k=-1)
    np.testing.assert_array_equal(tril[:, rows, cols], raw[:, 2 * LATENT_DIM :])


def test_full_covariance_diagonal_floor():
    posterior = posteriors.FullCovariance(min_scale=0.25)
    raw = np.full((2, posterior.param_size(3)), -60.0, dtype=np.float32)

    tril = posterior.parameters(tf.constant(raw), 3)["scale_tril"].numpy()

    diag = np.diagonal(tril, axis1=-2, axis2=-1)
    assert np.all(diag >= 0.25)
    np.testing.assert_allclose(diag, 0.25, rtol=0, atol=1e-7)


def test_diagonal_analytic_kl_matches_closed_form(rng):
    posterior = posteriors.DiagonalNormal()
    _, params = posterior_params(rng, posterior)
    mu = params["loc"].numpy().astype(np.float64)
    sigma = params["scale"].numpy().astype(np.float64)

    kl = tfd.kl_divergence(posterior.distribution(params), standard_normal_prior().distribution())

    expected = 0.5 * np.sum(mu**2 + sigma**2 - 1.0 - np.log(sigma**2), axis=-1)
    assert kl.shape == (BATCH,)
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_full_covariance_analytic_kl_matches_closed_form(rng):
    posterior = posteriors.FullCovariance()
    _, params = posterior_params(rng, posterior)
    mu = params["loc"].numpy().astype(np.float64)

    kl = tfd.kl_divergence(posterior.distribution(params), standard_normal_prior().distribution())

    expected = closed_form_kl_to_standard_normal(mu, covariance(posterior, params))
    np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("posterior", POSTERIORS, ids=lambda p: p.family)
def test_monte_carlo_kl_agrees_with_closed_form(rng, posterior):
    _, params = posterior_params(rng, posterior)
    mu = params["loc"].numpy().astype(np.float64)
    prior = standard_normal_prior()
    noise = random.standard_normal([NUM_MC, BATCH, LATENT_DIM], seed(11))

    z = posterior.reparameterize(params, noise)  # [L, B, D]
    log_ratio = posterior.distribution(params).log_prob(z) - prior.distribution().log_prob(z)
    log_ratio = log_ratio.numpy().astype(np.float64)

    expected = closed_form_kl_to_standard_normal(mu, covariance(posterior, params))
    estimate = log_ratio.mean(axis=0)
    standard_error = log_ratio.std(axis=0, ddof=1) / np.sqrt(NUM_MC)
    assert z.shape == (NUM_MC, BATCH, LATENT_DIM)
    assert np.all(np.abs(estimate - expected) < NUM_SE * standard_error), (
        estimate,
        expected,
        standard_error,
    )


@pytest.mark.parametrize("posterior", POSTERIORS, ids=lambda p: p.family)
def test_reparameterized_samples_have_the_posterior_moments(rng, posterior):
    _, params = posterior_params(rng, posterior, batch=2, latent_dim=3)
    mu = params["loc"].numpy().astype(np.float64)
    sigma = covariance(posterior, params)
    noise = random.standard_normal([NUM_MC, 2, 3], seed(12))

    z = posterior.reparameterize(params, noise).numpy().astype(np.float64)

    for b in range(2):
        variances = np.diag(sigma[b])
        mean_se = np.sqrt(variances / NUM_MC)
        np.testing.assert_array_less(np.abs(z[:, b].mean(axis=0) - mu[b]), NUM_SE * mean_se)
        cov_se = np.sqrt((np.outer(variances, variances) + sigma[b] ** 2) / NUM_MC)
        empirical = np.cov(z[:, b], rowvar=False)
        np.testing.assert_array_less(np.abs(empirical - sigma[b]), NUM_SE * cov_se)


@pytest.mark.parametrize("posterior", POSTERIORS, ids=lambda p: p.family)
def test_log_density_matches_scipy_multivariate_normal(rng, posterior):
    _, params = posterior_params(rng, posterior)
    mu = params["loc"].numpy().astype(np.float64)
    sigma = covariance(posterior, params)
    noise = random.standard_normal([5, BATCH, LATENT_DIM], seed(13))
    z = posterior.reparameterize(params, noise)

    log_q = posterior.distribution(params).log_prob(z).numpy()

    assert log_q.shape == (5, BATCH)
    z = z.numpy().astype(np.float64)
    for b in range(BATCH):
        expected = stats.multivariate_normal(mean=mu[b], cov=sigma[b]).logpdf(z[:, b])
        np.testing.assert_allclose(log_q[:, b], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("posterior", POSTERIORS, ids=lambda p: p.family)
def test_reparameterize_is_the_same_under_xla(rng, posterior):
    _, params = posterior_params(rng, posterior)
    noise = random.standard_normal([2, BATCH, LATENT_DIM], seed(14))

    eager = posterior.reparameterize(params, noise).numpy()
    xla = tf.function(posterior.reparameterize, jit_compile=True)(params, noise).numpy()

    np.testing.assert_allclose(xla, eager, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [posteriors.DiagonalNormal, posteriors.FullCovariance])
@pytest.mark.parametrize("min_scale", [0, -1e-3, float("inf")])
def test_posteriors_reject_invalid_min_scale(cls, min_scale):
    with pytest.raises(ValueError, match=rf"Received: min_scale={min_scale!r}"):
        cls(min_scale=min_scale)


def test_posterior_registry():
    assert posteriors.registry.names() == ["diagonal_normal", "full_covariance"]
    assert isinstance(posteriors.get("full_covariance"), posteriors.FullCovariance)
    with pytest.raises(ValueError, match=r"'diagonal_normal', 'full_covariance'"):
        posteriors.get("diagonal")
    restored = posteriors.FullCovariance.from_config(
        posteriors.FullCovariance(min_scale=0.5).get_config()
    )
    assert restored.min_scale == 0.5


# ------------------------------------------------------------------ the numpy side


@pytest.mark.parametrize("name", ["diagonal_normal", "full_covariance"])
def test_numpy_side_matches_scipy_and_the_tensorflow_side(name):
    """numpy log q(z|x) against scipy's multivariate normal, and numpy draws from given
    noise against the TensorFlow reparameterization of the same noise."""
    family = posteriors.get(name)
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(3, family.param_size(4))).astype(np.float32)
    params = {
        k: v.numpy().astype(np.float64) for k, v in family.parameters(tf.constant(raw), 4).items()
    }
    noise = rng.normal(size=(5, 3, 4))
    z = family.numpy_reparameterize(params, noise)
    np.testing.assert_allclose(
        z, family.reparameterize(params, tf.constant(noise, tf.float32)).numpy(), atol=1e-5
    )
    scale = params[family.scale_name]
    covariances = [np.diag(s**2) if s.ndim == 1 else s @ s.T for s in scale]
    expected = np.stack(
        [
            stats.multivariate_normal(params["loc"][i], covariances[i]).logpdf(z[:, i])
            for i in range(3)
        ],
        axis=1,
    )
    np.testing.assert_allclose(family.numpy_log_prob(z, params), expected, rtol=1e-9)
    draws = family.numpy_sample(params, 40_000, np.random.default_rng(1))  # [L, 3, 4]
    for i in range(3):
        np.testing.assert_allclose(
            np.cov(draws[:, i].T), covariances[i], atol=0.05 * scale.max() ** 2
        )


@pytest.mark.parametrize("name", ["diagonal_normal", "full_covariance"])
def test_numpy_side_computes_in_float64_from_float32_inputs(name):
    """The runtime hands the numpy side float32 encoder outputs; it computes in float64,
    as documented: float32 inputs give float64 results equal, to float64 rounding, to
    those of the same values given as float64 (a float32 step would differ by ~1e-7)."""
    family = posteriors.get(name)
    rng = np.random.default_rng(2)
    raw = rng.normal(size=(3, family.param_size(4))).astype(np.float32)
    params32 = {k: v.numpy() for k, v in family.parameters(tf.constant(raw), 4).items()}
    params64 = {k: v.astype(np.float64) for k, v in params32.items()}
    noise = rng.normal(size=(5, 3, 4)).astype(np.float32)

    z = family.numpy_reparameterize(params32, noise)
    log_q = family.numpy_log_prob(z.astype(np.float32), params32)

    assert z.dtype == log_q.dtype == np.float64
    np.testing.assert_allclose(
        z, family.numpy_reparameterize(params64, noise.astype(np.float64)), rtol=1e-14
    )
    expected = family.numpy_log_prob(z.astype(np.float32).astype(np.float64), params64)
    np.testing.assert_allclose(log_q, expected, rtol=1e-13)


def test_full_covariance_density_holds_for_any_triangular_factor():
    """N(loc, L L^T) has the same density whatever the signs of diag(L), since L and L D
    (D a diagonal of +-1) give the same covariance: the log-determinant is log |det L|."""
    family = posteriors.FullCovariance()
    rng = np.random.default_rng(3)
    tril = np.tril(rng.normal(size=(2, 3, 3)), k=-1)
    tril[:, range(3), range(3)] = [[1.5, -0.8, 2.0], [-1.2, 0.9, -1.7]]
    params = {"loc": rng.normal(size=(2, 3)), "scale_tril": tril}
    z = rng.normal(size=(4, 2, 3))

    normals = [stats.multivariate_normal(params["loc"][i], tril[i] @ tril[i].T) for i in range(2)]
    expected = np.stack([normals[i].logpdf(z[:, i]) for i in range(2)], axis=1)
    assert (np.diagonal(tril, axis1=1, axis2=2) < 0).any()
    np.testing.assert_allclose(family.numpy_log_prob(z, params), expected, rtol=1e-10)
