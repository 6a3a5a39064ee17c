"""The priors' numpy side against scipy, and against the Keras priors it mirrors."""

import numpy as np
import pytest
from scipy import special, stats

import tfvae
from tests import helpers
from tfvae import prior_families

PARAMS = {
    "logits": [0.2, -1.0, 0.7],
    "locs": [[-2.0, 0.5], [0.0, 3.0], [2.5, -1.0]],
    "scales": [[0.5, 1.0], [0.3, 0.2], [1.5, 0.8]],
}


def _mixture_density(z):
    weights = np.exp(PARAMS["logits"]) / np.sum(np.exp(PARAMS["logits"]))
    return sum(
        w * stats.multivariate_normal(loc, np.diag(np.square(scale))).pdf(z)
        for w, loc, scale in zip(weights, PARAMS["locs"], PARAMS["scales"], strict=True)
    )


def test_log_probs_match_scipy():
    z = np.random.default_rng(0).normal(scale=2.0, size=(4, 5, 2))
    np.testing.assert_allclose(
        prior_families.StandardNormal().numpy_log_prob(z, {}),
        stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        prior_families.Mixture().numpy_log_prob(z, PARAMS), np.log(_mixture_density(z)), rtol=1e-10
    )


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_mixture_draws_follow_the_mixture(temperature):
    """KS per dimension against the mixture's marginal CDF, and the variance."""
    rng = np.random.default_rng(1)
    z = prior_families.Mixture().numpy_sample(50_000, 2, PARAMS, temperature, rng)
    for d in range(2):
        cdf, variance = helpers.mixture_marginal(PARAMS, d, temperature)
        assert stats.kstest(z[:, d], cdf).pvalue > 1e-3
        assert z[:, d].var() == pytest.approx(variance, rel=0.03)


def test_the_keras_priors_are_their_families():
    assert issubclass(tfvae.priors.Mixture, prior_families.Mixture)
    assert issubclass(tfvae.priors.StandardNormal, prior_families.StandardNormal)
    layer = tfvae.priors.Mixture(num_components=3, seed=0)
    layer.build((2,))
    params = layer.parameters()
    assert set(params) == set(prior_families.Mixture.param_names)
    z = np.random.default_rng(2).normal(size=(6, 2)).astype(np.float32)
    np.testing.assert_allclose(
        layer.numpy_log_prob(z, params), layer.distribution().log_prob(z).numpy(), rtol=1e-5
    )


def test_standard_normal_draws_scale_with_temperature():
    """At temperature 0.5 the draws are N(0, 0.25 I): variance and KS per dimension."""
    z = prior_families.StandardNormal().numpy_sample(20_000, 3, {}, 0.5, np.random.default_rng(3))

    assert z.shape == (20_000, 3)
    assert z.dtype == np.float64
    for d in range(3):
        assert z[:, d].var() == pytest.approx(0.25, rel=0.05)
        assert stats.kstest(z[:, d], stats.norm(0.0, 0.5).cdf).pvalue > 1e-3


def _float32_params():
    return {name: np.asarray(value, dtype=np.float32) for name, value in PARAMS.items()}


def test_log_probs_are_float64_computations_from_float32_inputs():
    """float32 z and parameters (as `parameters()` exports them) give float64 log-densities
    equal to a float64 computation on the same values, not float32 intermediates (~1e-7)."""
    rng = np.random.default_rng(4)
    z32 = rng.normal(scale=2.0, size=(5, 2)).astype(np.float32)
    z = z32.astype(np.float64)

    log_p = prior_families.StandardNormal().numpy_log_prob(z32, {})
    assert log_p.dtype == np.float64
    np.testing.assert_allclose(log_p, -0.5 * np.sum(z**2, -1) - np.log(2 * np.pi), rtol=1e-13)

    params = {k: v.astype(np.float64) for k, v in _float32_params().items()}
    log_weights = special.log_softmax(params["logits"])
    per_component = stats.norm.logpdf(z[:, None, :], params["locs"], params["scales"]).sum(-1)
    expected = special.logsumexp(log_weights + per_component, axis=-1)
    log_p = prior_families.Mixture().numpy_log_prob(z32, _float32_params())
    assert log_p.dtype == np.float64
    np.testing.assert_allclose(log_p, expected, rtol=1e-13, atol=1e-13)
