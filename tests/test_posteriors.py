"""Tests for tfvae.posteriors, tfvae.priors, tfvae.objectives and tfvae.random.

Every quantity is compared with an independent computation: numpy closed forms for the
KL divergences, scipy for densities and distribution tests, and Monte Carlo estimates
checked within a few standard errors.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special, stats

from tfvae import objectives, posteriors, priors, random

tfd = tfp.distributions

BATCH = 3
LATENT_DIM = 4
NUM_MC = 20_000
NUM_SE = 4.0


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def seed(a, b=0):
    return tf.constant([a, b], dtype=tf.int64)


def posterior_params(rng, posterior, batch=BATCH, latent_dim=LATENT_DIM):
    raw = rng.normal(size=(batch, posterior.param_size(latent_dim))).astype(np.float32)
    return raw, posterior.parameters(tf.constant(raw), latent_dim)


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


# ------------------------------------------------------------------- posteriors


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


# ----------------------------------------------------------------------- priors


def test_standard_normal_log_prob_matches_scipy(rng):
    prior = standard_normal_prior()
    z = rng.normal(scale=2.0, size=(6, LATENT_DIM)).astype(np.float32)

    log_p = prior.distribution().log_prob(z).numpy()

    expected = stats.multivariate_normal(np.zeros(LATENT_DIM), np.eye(LATENT_DIM)).logpdf(z)
    np.testing.assert_allclose(log_p, expected, rtol=1e-5)


def test_standard_normal_samples():
    prior = standard_normal_prior()
    n = NUM_MC

    first = prior.sample(n, seed(5)).numpy()
    again = prior.sample(n, seed(5)).numpy()
    other = prior.sample(n, seed(6)).numpy()

    assert first.shape == (n, LATENT_DIM)
    np.testing.assert_array_equal(first, again)
    assert np.mean(first == other) < 1e-3
    np.testing.assert_array_less(np.abs(first.mean(axis=0)), NUM_SE / np.sqrt(n))
    np.testing.assert_array_less(np.abs(first.var(axis=0) - 1.0), NUM_SE * np.sqrt(2.0 / n))
    np.testing.assert_array_less(
        np.abs(np.corrcoef(first, rowvar=False) - np.eye(LATENT_DIM)), NUM_SE / np.sqrt(n)
    )


def test_prior_rejects_invalid_latent_dim():
    with pytest.raises(ValueError, match=r"Received: latent_dim=0"):
        priors.StandardNormal().build((0,))


def built_mixture(num_components=3, latent_dim=LATENT_DIM, seed_value=0):
    prior = priors.Mixture(num_components=num_components, min_scale=1e-3, seed=seed_value)
    prior.build((latent_dim,))
    return prior


def test_mixture_weights_have_the_documented_shapes():
    prior = built_mixture()

    shapes = {w.path.split("/")[-1]: tuple(w.shape) for w in prior.trainable_weights}

    assert shapes == {"logits": (3,), "locs": (3, LATENT_DIM), "raw_scales": (3, LATENT_DIM)}
    # Initially: equal weights and unit scales (softplus plus the floor); means seeded.
    np.testing.assert_array_equal(prior.logits.numpy(), 0.0)
    np.testing.assert_allclose(softplus(prior.raw_scales.numpy()) + prior.min_scale, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(prior.locs.numpy(), built_mixture().locs.numpy())
    assert not np.array_equal(prior.locs.numpy(), built_mixture(seed_value=1).locs.numpy())


def test_mixture_log_prob_matches_numpy_logsumexp(rng):
    prior = built_mixture()
    prior.logits.assign(rng.normal(size=(3,)).astype(np.float32))
    prior.locs.assign(rng.normal(size=(3, LATENT_DIM)).astype(np.float32))
    prior.raw_scales.assign(rng.normal(size=(3, LATENT_DIM)).astype(np.float32))
    z = rng.normal(scale=1.5, size=(7, LATENT_DIM)).astype(np.float32)

    log_p = prior.distribution().log_prob(z).numpy()

    log_weights = special.log_softmax(prior.logits.numpy().astype(np.float64))  # [K]
    locs = prior.locs.numpy().astype(np.float64)  # [K, D]
    scales = softplus(prior.raw_scales.numpy()) + 1e-3  # [K, D]
    log_components = stats.norm.logpdf(z[:, None, :], locs, scales).sum(axis=-1)  # [N, K]
    expected = special.logsumexp(log_weights + log_components, axis=-1)
    np.testing.assert_allclose(log_p, expected, rtol=1e-5, atol=1e-5)


def test_mixture_sample_is_deterministic_in_the_seed():
    prior = built_mixture()

    first = prior.sample(64, seed(1)).numpy()

    assert first.shape == (64, LATENT_DIM)
    np.testing.assert_array_equal(first, prior.sample(64, seed(1)).numpy())
    assert not np.array_equal(first, prior.sample(64, seed(2)).numpy())


@pytest.mark.parametrize("posterior", POSTERIORS, ids=lambda p: p.family)
def test_kl_to_mixture_is_not_analytic(rng, posterior):
    """Why the model falls back to a Monte Carlo KL for the mixture prior."""
    _, params = posterior_params(rng, posterior)

    with pytest.raises(NotImplementedError):
        tfd.kl_divergence(posterior.distribution(params), built_mixture().distribution())


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"num_components": 0}, "num_components"), ({"min_scale": 0.0}, "min_scale")],
)
def test_mixture_rejects_invalid_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=rf"Received: {argument}="):
        priors.Mixture(**kwargs)


def test_prior_registry():
    assert priors.registry.names() == ["mixture", "standard_normal"]
    assert isinstance(priors.get("mixture"), priors.Mixture)
    with pytest.raises(ValueError, match=r"'mixture', 'standard_normal'"):
        priors.get("gaussian")
    config = priors.Mixture(num_components=4, seed=3).get_config()
    restored = priors.Mixture.from_config(config)
    assert (restored.num_components, restored.seed) == (4, 3)


# ----------------------------------------------------------------------- random


def test_standard_normal_noise_is_the_same_with_and_without_xla():
    def draw(seed):
        return random.standard_normal([4, 8, 5], seed)

    s = seed(123, 7)
    eager = draw(s).numpy()
    graph = tf.function(draw)(s).numpy()
    xla = tf.function(draw, jit_compile=True)(s).numpy()

    np.testing.assert_array_equal(graph, eager)
    assert np.max(np.abs(xla - eager)) < 1e-5


def test_standard_normal_noise_is_normal():
    draws = random.standard_normal([100_000], seed(42)).numpy().astype(np.float64)

    assert stats.kstest(draws, "norm").pvalue > 1e-3


def test_standard_normal_noise_depends_on_the_seed():
    a = random.standard_normal([1000], seed(1)).numpy()
    b = random.standard_normal([1000], seed(2)).numpy()
    c = random.standard_normal([1000], seed(1, 1)).numpy()

    np.testing.assert_array_equal(a, random.standard_normal([1000], seed(1)).numpy())
    assert not np.any(a == b) and not np.any(a == c)
    # Independent streams: correlation within 4 standard errors of 0.
    assert abs(np.corrcoef(a, b)[0, 1]) < NUM_SE / np.sqrt(1000)


def test_standard_normal_noise_dtype():
    draws = random.standard_normal([3], seed(0), dtype=tf.float64)
    assert draws.dtype == tf.float64
    np.testing.assert_allclose(
        draws.numpy(), random.standard_normal([3], seed(0)).numpy(), rtol=1e-6
    )


def test_split_and_as_seed():
    first, second = random.split(seed(9))
    assert first.shape == second.shape == (2,)
    assert not np.array_equal(first.numpy(), second.numpy())
    np.testing.assert_array_equal(random.as_seed(5).numpy(), [5, 0])
    assert random.as_seed(5).dtype == tf.int64
    np.testing.assert_array_equal(random.as_seed(tf.constant([1, 2])).numpy(), [1, 2])


# ------------------------------------------------------------------- objectives


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
