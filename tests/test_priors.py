"""Tests for tfvae.priors: densities against scipy and numpy, samples, parameters, arguments."""

import numpy as np
import pytest
import tensorflow_probability as tfp
from scipy import special, stats

from tests.helpers import (
    LATENT_DIM,
    NUM_MC,
    NUM_SE,
    posterior_params,
    seed,
    softplus,
)
from tfvae import posteriors, priors

tfd = tfp.distributions


def standard_normal_prior(latent_dim=LATENT_DIM):
    prior = priors.StandardNormal()
    prior.build((latent_dim,))
    return prior


POSTERIORS = [posteriors.DiagonalNormal(), posteriors.FullCovariance()]


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
    [
        ({"num_components": 0}, "num_components"),
        ({"min_scale": 0.0}, "min_scale"),
        # The scales start at 1 = softplus(raw) + min_scale, which needs min_scale < 1.
        ({"min_scale": 1.0}, "min_scale"),
        ({"min_scale": 2.5}, "min_scale"),
        ({"seed": "x"}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
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


def test_mixture_parameters_are_the_constrained_weights(rng):
    min_scale = 0.01
    prior = priors.Mixture(num_components=3, min_scale=min_scale, seed=0)
    prior.build((LATENT_DIM,))
    logits = rng.normal(size=(3,)).astype(np.float32)
    locs = rng.normal(size=(3, LATENT_DIM)).astype(np.float32)
    raw_scales = rng.normal(scale=3.0, size=(3, LATENT_DIM)).astype(np.float32)
    prior.logits.assign(logits)
    prior.locs.assign(locs)
    prior.raw_scales.assign(raw_scales)

    params = prior.parameters()

    assert set(params) == {"logits", "locs", "scales"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in params.values())
    np.testing.assert_array_equal(params["logits"], logits)
    np.testing.assert_array_equal(params["locs"], locs)
    np.testing.assert_allclose(params["scales"], softplus(raw_scales) + min_scale, rtol=1e-6)


def test_mixture_parameters_are_a_snapshot():
    prior = built_mixture()
    params = prior.parameters()

    prior.logits.assign(np.ones(3, dtype=np.float32))

    np.testing.assert_array_equal(params["logits"], 0.0)


def test_standard_normal_has_no_parameters():
    assert priors.StandardNormal().parameters() == {}
    assert standard_normal_prior().parameters() == {}


@pytest.mark.parametrize("min_scale", [1e-6, 1e-3, 0.1, 0.5, 0.9])
def test_initial_mixture_scales_are_one(min_scale):
    prior = priors.Mixture(num_components=5, min_scale=min_scale, seed=0)
    prior.build((LATENT_DIM,))

    scales = prior.parameters()["scales"]

    assert scales.shape == (5, LATENT_DIM)
    # Exactly 1 is what the docstring promises, but float32 softplus(raw) + min_scale rounds
    # to 0.99999994 (one unit in the last place below 1) for some entries at min_scale=1e-3
    # (reported as a library bug); one ulp is the tolerance until that is fixed.
    np.testing.assert_array_max_ulp(scales, np.ones_like(scales), maxulp=1)


@pytest.mark.parametrize("seed_value", [0, 1, None])
def test_initial_mixture_means_are_standard_normal_draws(seed_value):
    """The component means start as N(0, I) draws (Keras's RandomNormal defaults to 0.05)."""
    locs = built_mixture(num_components=100, latent_dim=8, seed_value=seed_value).locs.numpy()

    # 800 draws: the sample sd of N(0, 1) is within 20% of 1, and the mean within
    # 4 / sqrt(800) = 0.14 of 0, with overwhelming probability.
    assert locs.shape == (100, 8)
    assert locs.std() == pytest.approx(1.0, rel=0.2)
    assert abs(locs.mean()) < NUM_SE / np.sqrt(locs.size)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("float32", np.float32), ("float64", np.float64), ("mixed_float16", np.float32)],
)
def test_standard_normal_samples_are_in_the_log_prob_dtype(policy, expected):
    """float64 latents under a float64 policy, float32 under float32 and mixed precision."""
    prior = priors.StandardNormal(dtype=policy)
    prior.build((LATENT_DIM,))

    z = prior.sample(4, seed(0))

    assert z.dtype == expected
    assert prior.distribution().log_prob(z).dtype == expected


@pytest.mark.parametrize("policy", ["float16", "bfloat16", "mixed_float16"])
def test_mixture_parameters_are_float32_under_half_precision(policy):
    """The manifest's parameters are float32 even when the weights are half precision."""
    prior = priors.Mixture(num_components=3, seed=0, dtype=policy)
    prior.build((LATENT_DIM,))

    params = prior.parameters()

    assert {k: v.dtype for k, v in params.items()} == dict.fromkeys(params, np.float32)
    np.testing.assert_array_equal(params["logits"], 0.0)
    np.testing.assert_array_equal(params["locs"], np.asarray(prior.locs).astype(np.float32))


def test_mixture_config_round_trip_restores_every_argument():
    prior = priors.Mixture(num_components=4, min_scale=0.05, seed=3)
    restored = priors.Mixture.from_config(prior.get_config())
    assert (restored.num_components, restored.min_scale, restored.seed) == (4, 0.05, 3)

    restored.build((LATENT_DIM,))
    raw_scales = np.full((4, LATENT_DIM), -10.0, dtype=np.float32)
    restored.raw_scales.assign(raw_scales)
    # The floor is the restored min_scale: softplus(-10) + 0.05, not + 1e-3 (the default).
    np.testing.assert_allclose(
        restored.parameters()["scales"], softplus(raw_scales) + 0.05, rtol=1e-6
    )
