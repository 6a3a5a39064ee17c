"""The priors' numpy side against scipy, and against the Keras priors it mirrors."""

import numpy as np
import pytest
from scipy import stats

import tfvae
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
    weights = np.exp(PARAMS["logits"]) / np.sum(np.exp(PARAMS["logits"]))
    for d in range(2):
        locs = np.array(PARAMS["locs"])[:, d]
        scales = temperature * np.array(PARAMS["scales"])[:, d]

        def cdf(x, locs=locs, scales=scales):
            return np.sum(weights * stats.norm(locs, scales).cdf(np.asarray(x)[..., None]), -1)

        assert stats.kstest(z[:, d], cdf).pvalue > 1e-3
        mean = weights @ locs
        assert z[:, d].var() == pytest.approx(weights @ (scales**2 + locs**2) - mean**2, rel=0.03)


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
