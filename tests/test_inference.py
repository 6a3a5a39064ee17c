"""Inference utilities against exact answers (linear-Gaussian model) and on real digits."""

import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

import tfvae
from tests.test_model import ConditionalLinearGaussian, FixedAffine, LinearGaussian
from tests.test_priors import TwoLayerLinearGaussian
from tfvae.validation import MAX_SEED

SHIFT, STRETCH = np.array([0.4, -0.3]), 1.5  # an imperfect posterior of the linear model


@pytest.fixture(scope="module")
def linear():
    model = LinearGaussian()
    return model, model.data(16)


# ------------------------------------------------------------------------ log p(x)


@pytest.mark.slow
def test_importance_weighted_estimate_rises_to_the_exact_log_marginal(linear):
    model, x = linear
    vae = model.exact_vae(SHIFT, STRETCH, seed=0)
    exact = model.log_marginal(x)
    elbo = vae.elbo_terms(x, num_samples=20000, seed=0)["elbo"].numpy()
    estimates = {k: vae.log_likelihood(x, num_samples=k, seed=1).numpy() for k in (1, 10, 5000)}
    gaps = {k: float(np.mean(exact - estimate)) for k, estimate in estimates.items()}
    # ELBO <= IWAE(k) <= log p(x) on average, the gap shrinking as k grows.
    assert np.mean(exact - elbo) > gaps[10] > gaps[5000]
    assert gaps[1] > gaps[10]
    np.testing.assert_allclose(estimates[5000], exact, atol=0.1)
    assert np.all(estimates[5000] > elbo)


@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [128, 300, 5000])
def test_chunking_bounds_memory_without_changing_the_estimate(linear, chunk_size):
    """5000 = 39 x 128 + 8 = 16 x 300 + 200: full chunks and a remainder."""
    model, x = linear
    vae = model.exact_vae(SHIFT, STRETCH, seed=0)
    estimate = vae.log_likelihood(x, num_samples=5000, chunk_size=chunk_size, seed=2).numpy()
    np.testing.assert_allclose(estimate, model.log_marginal(x), atol=0.1)


@pytest.mark.parametrize("num_samples, chunk_size", [(1000, 600), (7, 3), (3, 9)])
def test_chunks_combine_to_the_one_batch_estimate_over_the_same_noise(
    linear, num_samples, chunk_size
):
    """With the noise shared, chunking changes nothing but float rounding.

    Chunk i of a seeded estimate draws its `chunk_size` samples (the last one the
    remainder) with the stateless seed fold_in(seed, i). The same log-weights, drawn here
    chunk by chunk, concatenated and combined at once in float64 with scipy, must give
    the estimate: a dropped or doubled chunk moves it by log(600/1000) = -0.51 nats or
    more, and k = 1000 in chunks of 600 is exactly that case.
    """
    model, x = linear
    vae = model.exact_vae(SHIFT, STRETCH, seed=0)
    seed = tf.constant([5, 9], dtype=tf.int64)
    params = vae.posterior_parameters(tf.constant(x, tf.float32))
    full, remainder = divmod(num_samples, min(chunk_size, num_samples))
    sizes = [min(chunk_size, num_samples)] * full + ([remainder] if remainder else [])
    log_weights = np.concatenate(
        [
            vae.latent_terms_given(
                x, params, size, tf.random.experimental.stateless_fold_in(seed, i)
            ).log_weights.numpy()
            for i, size in enumerate(sizes)
        ]
    )  # [k, B]

    estimate = vae.log_likelihood(x, num_samples, chunk_size=chunk_size, seed=seed).numpy()

    assert log_weights.shape == (num_samples, len(x))
    expected = special.logsumexp(log_weights.astype(np.float64), axis=0) - np.log(num_samples)
    np.testing.assert_allclose(estimate, expected, rtol=0, atol=2e-5)


def test_log_likelihood_is_seeded_and_checks_its_arguments(linear):
    model, x = linear
    vae = model.exact_vae(SHIFT, STRETCH, seed=0)
    a = vae.log_likelihood(x, num_samples=50, seed=3).numpy()
    np.testing.assert_array_equal(a, vae.log_likelihood(x, num_samples=50, seed=3).numpy())
    assert not np.array_equal(a, vae.log_likelihood(x, num_samples=50, seed=4).numpy())
    with pytest.raises(ValueError, match="num_samples to be a positive integer"):
        vae.log_likelihood(x, num_samples=0)
    with pytest.raises(
        ValueError, match="Expected x in the support of the 'gaussian' likelihood: finite reals"
    ):
        vae.log_likelihood(np.full_like(x, np.nan))


def test_evaluate_reports_nats_and_bits_per_dimension(linear):
    model, x = linear
    vae = model.exact_vae(SHIFT, STRETCH, seed=0)
    result = tfvae.evaluate(vae, x, num_samples=5000, batch_size=6, verbose=0)
    assert result["examples"] == 16
    assert result["nll"] == pytest.approx(-np.mean(model.log_marginal(x)), abs=0.05)
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (5 * np.log(2)), rel=1e-6)
    assert result["elbo"] == pytest.approx(result["reconstruction"] - result["kl"], abs=1e-4)
    assert -result["elbo"] > result["nll"]
    # A dataset of (x, y) batches gives the same numbers as the array in the same batches.
    dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(16))).batch(6)
    from_dataset = tfvae.evaluate(vae, dataset, num_samples=5000, verbose=0)
    scalars = ("elbo", "reconstruction", "kl", "nll", "bits_per_dim", "examples")
    assert {k: from_dataset[k] for k in scalars} == pytest.approx({k: result[k] for k in scalars})
    np.testing.assert_allclose(
        from_dataset["posterior_mean_variance"], result["posterior_mean_variance"], rtol=1e-6
    )
    assert from_dataset["active_dimensions"] == result["active_dimensions"]


@pytest.mark.slow
@pytest.mark.parametrize("element", ["x", "(x,)", "(x, y)"])
def test_evaluate_reads_datasets_of_every_element_format(linear, element):
    """A dataset of (x,) tuples is read as x, like Keras's fit reads it."""
    model, x = linear
    vae = model.exact_vae(SHIFT, STRETCH, seed=0)
    parts = {"x": x, "(x,)": (x,), "(x, y)": (x, np.arange(len(x)))}[element]
    dataset = tf.data.Dataset.from_tensor_slices(parts).batch(6)
    result = tfvae.evaluate(vae, dataset, num_samples=20, verbose=0)
    from_array = tfvae.evaluate(vae, x, num_samples=20, batch_size=6, verbose=0)
    assert result["examples"] == 16
    for key in ("elbo", "nll", "posterior_mean_variance"):
        np.testing.assert_allclose(result[key], from_array[key], rtol=1e-6)


def test_a_dataset_of_dicts_is_a_clear_type_error(linear):
    model, x = linear
    vae = model.exact_vae(seed=0)
    dataset = tf.data.Dataset.from_tensor_slices({"x": x}).batch(6)
    with pytest.raises(TypeError, match=r"Expected dataset elements x, \(x,\) or \(x, y, ...\)"):
        tfvae.inference.latent_diagnostics(vae, dataset)


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1])
def test_seeds_outside_the_one_range_are_refused(linear, seed):
    """Fails before the seed ranges were unified: any |seed| < 2**63 was taken."""
    model, x = linear
    vae = model.exact_vae(seed=0)
    message = r"seed to be an integer in \[0, 2147483647\] or a \(2,\) integer tensor"
    calls = {
        "log_likelihood": lambda: vae.log_likelihood(x, num_samples=4, seed=seed),
        "evaluate": lambda: tfvae.evaluate(vae, x, num_samples=4, seed=seed, verbose=0),
        "latent_diagnostics": lambda: tfvae.inference.latent_diagnostics(vae, x, seed=seed),
        "refine_posterior": lambda: vae.refine_posterior(x, steps=1, seed=seed),
        "impute": lambda: vae.impute(x, np.zeros(x.shape, bool), steps=1, seed=seed),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=message):
            call()
            pytest.fail(f"{name} took seed={seed}")
    maximum = vae.log_likelihood(x, num_samples=4, seed=MAX_SEED)
    assert maximum.shape == (16,)


def test_conditional_estimates_are_exact_with_the_exact_posterior():
    """Each importance weight of the exact posterior is p(x|y), so log_likelihood and
    evaluate give scipy's log p(x|y) at any k: from arrays with their conditions, and
    from a dataset of (x, y) batches."""
    model = ConditionalLinearGaussian()
    x, y = model.data(12)
    exact = model.log_marginal(x, y)
    vae = model.exact_vae(kl="mc", seed=0)
    vae.compile(jit_compile=False)  # the same computation, traced without XLA: quicker here
    estimate = vae.log_likelihood(x, num_samples=7, chunk_size=3, condition=y)
    np.testing.assert_allclose(estimate, exact, atol=1e-3)
    from_arrays = tfvae.evaluate(vae, x, 7, batch_size=6, chunk_size=3, verbose=0, condition=y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(6)
    from_dataset = tfvae.evaluate(vae, dataset, 7, chunk_size=3, verbose=0)
    for result in (from_arrays, from_dataset):
        assert result["nll"] == pytest.approx(-exact.mean(), abs=1e-3)
        assert result["elbo"] == pytest.approx(exact.mean(), abs=1e-3)
    without_y = tf.data.Dataset.from_tensor_slices(x).batch(6)
    with pytest.raises(ValueError, match="This conditional model needs a condition"):
        tfvae.evaluate(vae, without_y, 7, chunk_size=3, verbose=0)
    # Refinement starts from the encoder's q(z|x, y), here exact: its ELBO is log p(x|y).
    refined = vae.refine_posterior(x, steps=2, eval_samples=3, seed=0, condition=y)
    np.testing.assert_allclose(refined["elbo_before"], exact, atol=1e-3)


def test_evaluate_is_a_function_of_its_seed(linear):
    """Every Monte Carlo number follows `seed`, the latent diagnostics' KL too."""
    model, x = linear
    vae = model.near_deterministic_vae(kl="mc", seed=0)
    results = [tfvae.evaluate(vae, x, num_samples=5, seed=s, verbose=0) for s in (1, 1, 2)]
    assert results[0] == results[1]
    for key in ("elbo", "nll", "kl_per_dimension"):
        assert results[0][key] != results[2][key], key


def test_the_progress_bar_counts_batches_and_shows_the_running_nll(linear, capsys):
    """One batch: the bar shows batch 1 and its NLL; verbose=0 shows nothing."""
    model, x = linear
    vae = model.exact_vae(seed=0)
    result = tfvae.evaluate(vae, x, num_samples=5, batch_size=16, verbose=1)
    shown = re.findall(r"(-?\d+)/Unknown .*?/batch - nll: (\S+)", capsys.readouterr().out)
    assert [count for count, _ in shown] == ["1"]
    assert float(shown[0][1]) == pytest.approx(result["nll"], abs=1e-4)
    tfvae.evaluate(vae, x, num_samples=5, batch_size=16, verbose=0)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="Expected data with at least one example"):
        tfvae.evaluate(vae, x[:0], num_samples=5, verbose=0)


def _decoder_ignores_z_vae(kernel, bias, decoder_bias=(0.0,) * 5, scale=1.0):
    """A VAE on 5 data dimensions with latent_dim 2: a diagonal posterior with raw
    parameters x @ kernel + bias `(5, 4)`, `(4,)`, and p(x|z) = N(decoder_bias, scale^2 I)
    for every z, so that E[x|z] and log p(x|z) do not depend on z."""
    return tfvae.VAE(
        FixedAffine(kernel, bias),
        FixedAffine(np.zeros((2, 5)), decoder_bias),
        latent_dim=2,
        likelihood=tfvae.likelihoods.Gaussian(scale=scale),
        seed=0,
    )


def test_latent_diagnostics_merge_uneven_batches_exactly():
    """A_d against numpy's variance of the posterior means, to float64 rounding. Integer
    data and dyadic weights make every loc exact in float32, so both see the same locs;
    their mean of about 100 makes a float32 merge lose digits. The per-dimension KL
    against the closed form for N(m, s^2) against N(0, 1)."""
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 9, size=(17, 5)).astype("float32")
    kernel = np.zeros((5, 4))
    kernel[:, 0] = rng.integers(-4, 5, size=5) / 4  # the second loc is -50 for every x
    vae = _decoder_ignores_z_vae(kernel, [100.0, -50.0, 0.25, -0.5])
    result = tfvae.inference.latent_diagnostics(vae, x, batch_size=7, threshold=0.0)
    params = vae.posterior_parameters(x)
    loc = params["loc"].numpy().astype("float64")
    np.testing.assert_array_equal(loc, x @ kernel[:, :2] + [100.0, -50.0])  # exact
    assert loc[:, 0].var() > 0
    np.testing.assert_allclose(result["posterior_mean_variance"], loc.var(axis=0), rtol=1e-10)
    scale = params["scale"].numpy().astype("float64")
    kl = 0.5 * (scale**2 + loc**2 - 1.0) - np.log(scale)
    np.testing.assert_allclose(result["kl_per_dimension"], kl.mean(axis=0), rtol=1e-5)
    # A variance of exactly 0 is not above the threshold 0.
    assert result["active_units"] == 1 and result["active_dimensions"] == [0]
    # 999 copies of one example have its diagnostics exactly: sums of up to 999 float32
    # values are exact in float64, and not in float32.
    one = tfvae.inference.latent_diagnostics(vae, x[:1])
    copies = tfvae.inference.latent_diagnostics(vae, np.repeat(x[:1], 999, axis=0))
    assert copies["kl_per_dimension"] == one["kl_per_dimension"]
    assert copies["posterior_mean_variance"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="Expected x in the support of the 'gaussian'"):
        tfvae.inference.latent_diagnostics(vae, np.full_like(x, np.nan))


# ------------------------------------------------------------------ amortization gap


def test_refinement_closes_the_gap_to_the_exact_posterior(linear):
    model, x = linear
    vae = model.exact_vae(SHIFT, STRETCH, seed=0)
    result = vae.refine_posterior(x, steps=300, seed=0)
    before, after = result["elbo_before"].numpy(), result["elbo_after"].numpy()
    exact = model.log_marginal(x)
    assert np.all(after >= before)
    assert np.mean(exact - before) > 0.5  # the imperfect posterior's gap ...
    assert np.mean(exact - after) < 0.1  # ... is nearly closed
    assert result["params"]["scale_tril"].shape == (16, 2, 2)


def test_refinement_is_adam_on_each_points_elbo():
    """A decoder that ignores z leaves ELBO = log p(x) - KL(q || p) with the KL in closed
    form, so the gradient has no noise: refinement must follow Adam (Kingma and Ba, 2015,
    Algorithm 1) on each point's raw parameters [loc | raw scale], here in numpy. The
    first loc starts at 2^-26 for every point, so its first gradient is of the size of
    Adam's epsilon, 1e-8, and the first step depends on how epsilon enters."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5)).astype("float32")
    kernel, bias = rng.normal(size=(5, 4)), rng.normal(size=4)
    kernel[:, 0], bias[0] = 0.0, 2.0**-26
    vae = _decoder_ignores_z_vae(kernel, bias)
    vae.compile(jit_compile=False)  # the same computation, traced without XLA: quicker here
    steps, learning_rate, beta1, beta2, epsilon = 6, 0.05, 0.9, 0.999, 1e-8

    def kl_and_gradient(raw):  # KL(N(loc, s^2) || N(0, 1)) per point, d KL / d raw
        loc, raw_scale = raw[:, :2], raw[:, 2:]
        scale = np.logaddexp(0.0, raw_scale) + 1e-4  # softplus, and the posterior's floor
        kl = (0.5 * (loc**2 + scale**2 - 1.0) - np.log(scale)).sum(axis=1)
        return kl, np.concatenate([loc, (scale - 1.0 / scale) * special.expit(raw_scale)], 1)

    raw0 = x.astype("float64") @ kernel + bias
    raw, m, v = raw0, np.zeros_like(raw0), np.zeros_like(raw0)
    for t in range(1, steps + 1):
        gradient = kl_and_gradient(raw)[1]
        m = beta1 * m + (1 - beta1) * gradient
        v = beta2 * v + (1 - beta2) * gradient**2
        raw = raw - learning_rate * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + epsilon)

    result = vae.refine_posterior(x, steps, learning_rate, num_samples=2, eval_samples=3, seed=0)
    assert np.all(result["refined"])
    np.testing.assert_allclose(result["params"]["loc"], raw[:, :2], rtol=1e-4)
    scale = np.logaddexp(0.0, raw[:, 2:]) + 1e-4
    np.testing.assert_allclose(result["params"]["scale"], scale, rtol=1e-4)
    gain = kl_and_gradient(raw0)[0] - kl_and_gradient(raw)[0]
    np.testing.assert_allclose(result["elbo_after"] - result["elbo_before"], gain, rtol=1e-3)
    # A step too small to move the parameters ties the ELBOs: the encoder's q is kept.
    unmoved = vae.refine_posterior(x, steps=1, learning_rate=1e-12, eval_samples=3, seed=0)
    assert not np.any(unmoved["refined"])
    np.testing.assert_array_equal(unmoved["elbo_after"], unmoved["elbo_before"])
    with pytest.raises(ValueError, match="Expected x in the support of the 'gaussian'"):
        vae.refine_posterior(np.full_like(x, np.inf), steps=1)


# ------------------------------------------------------------------------ imputing


def _conditional_mean(model, x, observed, missing):
    """E[x_missing | x_observed] of the linear-Gaussian model, in closed form."""
    covariance = model.W @ model.W.T + 0.7**2 * np.eye(len(model.b))
    gain = np.linalg.solve(
        covariance[np.ix_(observed, observed)], covariance[np.ix_(observed, missing)]
    )
    return model.b[missing] + (x[:, observed] - model.b[observed]) @ gain


@pytest.fixture(scope="module")
def linear_imputation():
    model = LinearGaussian()
    x = model.data(64, seed=3)
    observed, missing = [0, 1], [2, 3, 4]
    mask = np.zeros_like(x, dtype=bool)
    mask[:, missing] = True
    return model, x, mask, missing, _conditional_mean(model, x, observed, missing)


@pytest.mark.slow
def test_imputation_with_the_exact_posterior_converges_to_the_conditional_mean(
    linear_imputation,
):
    model, x, mask, missing, expected = linear_imputation
    vae = model.exact_vae(seed=0)
    completed = {
        method: vae.impute(x, mask, method=method, steps=1000, seed=1).numpy()
        for method in tfvae.inference.IMPUTATION_METHODS
    }
    # With the exact posterior every Metropolis proposal is accepted: the same chain.
    np.testing.assert_allclose(
        completed["pseudo_gibbs"], completed["metropolis_within_gibbs"], atol=1e-5
    )
    error = np.abs(completed["pseudo_gibbs"][:, missing] - expected).mean()
    mean_fill_error = np.abs(model.b[missing] - expected).mean()
    assert error < 0.2 < 0.5 < mean_fill_error  # measured: 0.14 and 0.57
    np.testing.assert_array_equal(completed["pseudo_gibbs"][~mask], x[~mask])


@pytest.mark.slow
def test_metropolis_within_gibbs_is_exact_where_pseudo_gibbs_is_biased(linear_imputation):
    """Mattei and Frellsen (2018): with an imperfect encoder only the Metropolis chain
    keeps p(z, x_missing | x_observed) as its target."""
    model, x, mask, missing, expected = linear_imputation
    vae = model.exact_vae(np.array([0.8, -0.6]), 1.6, seed=0)
    errors = {
        method: np.abs(vae.impute(x, mask, method=method, steps=2000, seed=1)[:, 2:] - expected)
        for method in tfvae.inference.IMPUTATION_METHODS
    }
    # Measured: 0.15 against 1.0.
    assert np.mean(errors["metropolis_within_gibbs"]) < 0.25
    assert np.mean(errors["pseudo_gibbs"]) > 2 * np.mean(errors["metropolis_within_gibbs"])


@pytest.mark.slow
def test_metropolis_within_gibbs_stays_exact_with_an_estimated_prior():
    """A two-layer model with imperfect posteriors at both layers: its p(z1) is a noisy
    one-draw estimate, kept with the chain's state (pseudo-marginal), and the chain still
    converges to the exact E[x_missing | x_observed]; pseudo-Gibbs does not. Three of
    the five values are observed, which pins z1 (of 3) and lets the chains mix."""
    model = TwoLayerLinearGaussian()
    x = model.data(32, seed=3)
    observed, missing = [0, 1, 2], [3, 4]
    mask = np.zeros_like(x, dtype=bool)
    mask[:, missing] = True
    mean, covariance = model.marginal()
    gain = np.linalg.solve(
        covariance[np.ix_(observed, observed)], covariance[np.ix_(observed, missing)]
    )
    expected = mean[missing] + (x[:, observed] - mean[observed]) @ gain
    # Half a posterior standard deviation off at each layer, and 1.3 times as wide.
    shift = 0.5 * np.sqrt(np.diag(model.S1)) * [1, -1, 1]
    upper_shift = 0.5 * np.sqrt(np.diag(model.S2)) * [1, -1]
    vae = model.vae(shift=shift, upper_shift=upper_shift, stretch=1.3)
    errors = {
        method: np.mean(
            np.abs(vae.impute(x, mask, method=method, steps=steps, seed=1)[:, 3:] - expected)
        )
        for method, steps in (("metropolis_within_gibbs", 3000), ("pseudo_gibbs", 1500))
    }
    # Measured: 0.27 after 1500 steps and 0.14 after 6000, against 3.1 (the closed form's
    # error from the mean: 2.3).
    assert errors["metropolis_within_gibbs"] < 0.3
    assert errors["pseudo_gibbs"] > 5 * errors["metropolis_within_gibbs"]


def test_impute_checks_its_arguments(linear_imputation):
    model, x, mask, _, _ = linear_imputation
    vae = model.exact_vae(seed=0)
    with pytest.raises(
        ValueError, match=r"method to be one of \['metropolis_within_gibbs', 'pseudo_gibbs'\]"
    ):
        vae.impute(x, mask, method="gibbs")
    with pytest.raises(ValueError, match="mask to be a boolean array shaped like x"):
        vae.impute(x, mask[:, :2])
    with pytest.raises(ValueError, match="mask to be a boolean array"):
        vae.impute(x, mask.astype(int))
    vae.compile(jit_compile=False)  # the same computation, traced without XLA: quicker here
    holes = np.where(mask, np.nan, x)  # missing entries may hold any value ...
    assert np.all(np.isfinite(vae.impute(holes, mask, steps=1, seed=0)))
    holes[0, 0] = np.nan  # ... observed ones may not
    with pytest.raises(ValueError, match="Expected x in the support of the 'gaussian'"):
        vae.impute(holes, mask, steps=1, seed=0)


@pytest.mark.parametrize(
    "method, steps", [("pseudo_gibbs", 1), ("pseudo_gibbs", 3), ("metropolis_within_gibbs", 4)]
)
def test_imputation_averages_the_decoder_means_after_the_burn_in(method, steps):
    """A decoder that ignores z has E[x_missing | z] = b for every z, so the average over
    the second half of any chain is b on the missing entries; observed ones are kept."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5)).astype("float32")
    mask = rng.random(x.shape) < 0.5
    b = rng.normal(size=5)
    vae = _decoder_ignores_z_vae(rng.normal(size=(5, 4)), np.zeros(4), b, scale=0.5)
    imputed = vae.impute(x, mask, method=method, steps=steps, seed=0).numpy()
    np.testing.assert_array_equal(imputed[~mask], x[~mask])
    np.testing.assert_allclose(imputed[mask], np.broadcast_to(b, x.shape)[mask], rtol=1e-6)


def test_a_deterministic_pseudo_gibbs_chain_is_averaged_over_its_second_half():
    """Networks with (nearly) no noise, q's scale at its 1e-4 floor and p(x|z)'s 1e-3,
    make pseudo-Gibbs the map z_t = x_t K + c, x_(t+1) missing = (z_t W + b) missing,
    from x_0 missing = b, the mean of p(x|z=0); imputation returns the mean of
    z_t W + b over t > steps // 2. Here the recursion is in numpy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5)).astype("float32")
    mask = np.zeros(x.shape, bool)
    mask[:, 3:] = True
    kernel, c = rng.normal(size=(5, 2)), rng.normal(size=2)
    w, b = rng.normal(size=(2, 5)) / 2, rng.normal(size=5)
    encoder = FixedAffine(np.concatenate([kernel, np.zeros((5, 2))], 1), [*c, -30.0, -30.0])
    vae = tfvae.VAE(
        encoder, FixedAffine(w, b), 2, likelihood=tfvae.likelihoods.Gaussian(scale=1e-3)
    )
    vae.compile(jit_compile=False)  # the same computation, traced without XLA: quicker here
    steps = 6
    x_t, means = np.where(mask, b, x), []
    for _ in range(steps):
        means.append((x_t @ kernel + c) @ w + b)
        x_t = np.where(mask, means[-1], x)
    expected = np.where(mask, np.mean(means[steps // 2 :], axis=0), x)
    imputed = vae.impute(x, mask, method="pseudo_gibbs", steps=steps, seed=0).numpy()
    np.testing.assert_allclose(imputed, expected, atol=1e-2)
    # The chain has not settled (its last two steps differ), so its start shows in the
    # answer, and a longer window would give another one.
    assert np.abs(means[-1] - means[-2])[mask].max() > 0.1
    assert np.abs(np.mean(means[steps // 3 :], axis=0) - expected)[mask].max() > 0.1


def test_with_the_exact_posterior_every_proposal_is_accepted(linear_imputation):
    """q(z|x) = p(z|x) makes each Metropolis ratio 1: the chain is the pseudo-Gibbs one."""
    model, x, mask, _, _ = linear_imputation
    vae = model.exact_vae(seed=0)
    vae.compile(jit_compile=False)  # the same computation, traced without XLA: quicker here
    chains = [
        vae.impute(x, mask, method=m, steps=4, seed=1)
        for m in ("metropolis_within_gibbs", "pseudo_gibbs")
    ]
    np.testing.assert_allclose(chains[0], chains[1], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------- on the 8x8 digits


@pytest.fixture(scope="module")
def digits():
    x, _ = tfvae.data.load("digits", split="train")
    x_test, _ = tfvae.data.load("digits", split="test")
    return x.astype("float32"), x_test.astype("float32")


def _digits_vae(objective, x, epochs=40):
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((128,), seed=0),
        tfvae.networks.mlp_decoder((128,), seed=1),
        latent_dim=8,
        likelihood=tfvae.likelihoods.Binomial(total_count=16),
        objective=objective,
        num_samples=5,
        seed=0,
    )
    vae.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    vae.fit(x, batch_size=100, epochs=epochs, verbose=0)
    return vae


@pytest.fixture(scope="module")
def trained_digits(digits):
    x, _ = digits
    return {objective: _digits_vae(objective, x) for objective in ("elbo", "iwae")}


@pytest.mark.slow
def test_iwae_training_reaches_a_better_log_likelihood_than_elbo_training(trained_digits, digits):
    """Equal epochs and samples (k = 5); measured test NLL: IWAE 106.0-106.6 nats against
    ELBO 107.2-108.8 (runs differ by CPU thread scheduling)."""
    _, x_test = digits
    nll = {
        objective: -float(np.mean(vae.log_likelihood(x_test, num_samples=1000, seed=0)))
        for objective, vae in trained_digits.items()
    }
    print(f"test NLL after 40 epochs: {nll}")
    assert nll["iwae"] < nll["elbo"]


@pytest.mark.slow
def test_refinement_never_lowers_and_raises_the_held_out_elbo(trained_digits, digits):
    _, x_test = digits
    result = trained_digits["elbo"].refine_posterior(x_test, steps=100, seed=0)
    gain = (result["elbo_after"] - result["elbo_before"]).numpy()
    kept = np.mean(result["refined"])
    print(f"amortization gap closed: {gain.mean():.2f} nats (min {gain.min():.3f}, kept {kept})")
    # Reported on samples independent of those that chose: measured mean 8.2, min 1.3.
    assert np.all(gain >= 0)
    assert gain.mean() > 2.0


def _binomial_log_likelihood(x, mean_counts, mask):
    probs = np.clip(mean_counts / 16.0, 1e-4, 1 - 1e-4)
    return stats.binom.logpmf(x, 16, probs)[mask].mean()


@pytest.mark.slow
def test_imputed_digits_beat_the_training_mean(trained_digits, digits):
    x, x_test = digits
    mask = np.zeros_like(x_test, dtype=bool)
    mask[:, 4:] = True  # the bottom half of every test digit is missing
    vae = trained_digits["elbo"]
    completed = vae.impute(x_test, mask, method="metropolis_within_gibbs", seed=0).numpy()
    mean_fill = np.broadcast_to(x.mean(axis=0), x_test.shape)
    ours = _binomial_log_likelihood(x_test, completed, mask)
    baseline = _binomial_log_likelihood(x_test, mean_fill, mask)
    squared_errors = (
        np.mean((completed - x_test)[mask] ** 2),
        np.mean((mean_fill - x_test)[mask] ** 2),
    )
    print(f"log-likelihood per pixel {ours:.3f} vs {baseline:.3f}; squared error {squared_errors}")
    assert ours > baseline  # measured: -4.02 against -4.12
    assert squared_errors[0] < squared_errors[1]  # measured: 18.3 against 19.9


SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.slow
def test_imputed_mnist_beats_the_training_mean():
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"reference MNIST copy not found at {SHARED_MNIST}")
    x, _ = tfvae.data.load("mnist", split="train", data_dir=SHARED_MNIST)
    x_test, _ = tfvae.data.load("mnist", split="test", data_dir=SHARED_MNIST)
    train = tfvae.data.make_dataset(x[:20000], batch_size=100, scale=255.0, binarize="dynamic")
    x_test = tfvae.data.preprocess(x_test[:300], scale=255.0, binarize="static", seed=0)
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((256,), seed=0),
        tfvae.networks.mlp_decoder((256,), seed=1),
        latent_dim=16,
        seed=0,
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    vae.fit(train, epochs=5, verbose=0)
    mask = np.zeros_like(x_test, dtype=bool)
    mask[:, 14:] = True  # bottom half
    completed = vae.impute(x_test, mask, method="metropolis_within_gibbs", seed=0).numpy()
    train_mean = np.broadcast_to(x[:20000].mean(axis=0) / 255.0, x_test.shape)

    def scores(probs):
        probs = np.clip(probs, 1e-4, 1 - 1e-4)[mask]
        truth = x_test[mask]
        log_likelihood = np.mean(truth * np.log(probs) + (1 - truth) * np.log1p(-probs))
        return log_likelihood, np.mean((probs > 0.5) == (truth > 0.5))

    ours, baseline = scores(completed), scores(train_mean)
    print(f"MNIST bottom halves: (log-likelihood, accuracy) {ours} vs mean fill {baseline}")
    # Measured over three runs: accuracy 0.881-0.882 against 0.873, while the per-pixel
    # log-likelihood (-0.260 to -0.268 against -0.264) is not reliably better after 5
    # epochs on 20,000 images; the issue accepts either, so the test asserts accuracy.
    assert ours[1] > baseline[1]


# -------------------------------------------------------------- posterior collapse

IGNORED = (1, 3)  # latent dimensions the decoder of `collapsed` never reads


@pytest.fixture(scope="module")
def collapsed(digits):
    """A digits VAE with latent_dim 4 whose decoder's first layer has zero weights from
    z_1 and z_3, kept zero by a constraint applied after every optimizer step.

    The encoder's tanh bounds its hidden units: with ReLU, raw counts up to 16 give hidden
    units of about 10, and Adam took far longer than 30 epochs to bring the unused
    dimensions to the prior (measured KL 0.1-0.3 nats each after 30 epochs)."""
    x, _ = digits
    epochs = 20
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((64,), activation="tanh", seed=0),
        tfvae.networks.mlp_decoder((64,), seed=1),
        latent_dim=4,
        likelihood=tfvae.likelihoods.Binomial(total_count=16),
        seed=0,
    )
    vae.build((None, *x.shape[1:]))
    kernel = vae.decoder.hidden_layers[0].kernel  # [latent_dim, 64]
    mask = np.ones(kernel.shape, dtype="float32")
    mask[list(IGNORED)] = 0.0
    kernel.assign(kernel * mask)
    kernel.constraint = lambda w: w * mask
    learning_rate = keras.optimizers.schedules.CosineDecay(1e-2, epochs * len(x) // 100)
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate), jit_compile=True)
    vae.fit(x, batch_size=100, epochs=epochs, verbose=0)
    return vae


@pytest.mark.slow
def test_latent_diagnostics_finds_the_dimensions_the_decoder_ignores(collapsed, digits):
    _, x_test = digits
    vae = collapsed
    assert not np.any(vae.decoder.hidden_layers[0].kernel.numpy()[list(IGNORED)])
    result = tfvae.inference.latent_diagnostics(vae, x_test, batch_size=64)
    print(f"latent diagnostics of the digits VAE with z_1, z_3 ignored: {result}")
    assert result["active_dimensions"] == [0, 2]
    assert result["active_units"] == 2
    kl = np.array(result["kl_per_dimension"])
    variance = np.array(result["posterior_mean_variance"])
    # Measured on the test digits: KL of z_1, z_3 3.5e-4 and 1.9e-4 nats, of z_0, z_2 2.6
    # and 2.8; variances of their posterior means 2.6e-4, 3.4e-4 against 2.1, 1.6.
    assert np.all(kl[list(IGNORED)] < 0.01)
    assert np.all(kl[[0, 2]] > 1.0)
    assert np.all(variance[[0, 2]] > 0.5)
    # Per-dimension KLs add up to the total KL; A_d is numpy's variance of the loc.
    total_kl = np.mean(vae.elbo_terms(x_test, seed=0)["kl"].numpy())
    assert kl.sum() == pytest.approx(total_kl, rel=1e-5)
    loc = vae.posterior_parameters(tf.constant(x_test))["loc"].numpy().astype("float64")
    np.testing.assert_allclose(variance, np.var(loc, axis=0), rtol=1e-4, atol=1e-9)


@pytest.mark.slow
def test_latent_diagnostics_of_arrays_and_datasets_agree(collapsed, digits):
    _, x_test = digits
    result = tfvae.inference.latent_diagnostics(collapsed, x_test, batch_size=50)
    # Datasets of x, (x,) and (x, y) batches; a dataset of (x,) tuples used to fail.
    for dataset in (
        tf.data.Dataset.from_tensor_slices(x_test).batch(40),
        tf.data.Dataset.from_tensor_slices((x_test,)).batch(40),
        tf.data.Dataset.from_tensor_slices((x_test, np.arange(len(x_test)))).batch(40),
    ):
        other = tfvae.inference.latent_diagnostics(collapsed, dataset)
        assert other["active_dimensions"] == result["active_dimensions"]
        for key in ("kl_per_dimension", "posterior_mean_variance"):
            np.testing.assert_allclose(other[key], result[key], rtol=1e-5)
    # The threshold decides what counts as active.
    variance = np.array(result["posterior_mean_variance"])
    # (1 + 1e-3): a second pass may differ from the first in the last float32 bits.
    above_all = variance.max() * (1 + 1e-3)
    strict = tfvae.inference.latent_diagnostics(collapsed, x_test, threshold=above_all)
    assert strict["active_units"] == 0 and strict["active_dimensions"] == []
    with pytest.raises(ValueError, match="Expected threshold to be"):
        tfvae.inference.latent_diagnostics(collapsed, x_test, threshold=-1.0)
    with pytest.raises(ValueError, match="at least one example"):
        tfvae.inference.latent_diagnostics(collapsed, x_test[:0])


@pytest.mark.slow
def test_evaluate_reports_the_latent_diagnostics(collapsed, digits, linear):
    _, x_test = digits
    result = tfvae.evaluate(collapsed, x_test[:100], num_samples=10, verbose=0)
    assert result["active_dimensions"] == [0, 2] and result["active_units"] == 2
    assert sum(result["kl_per_dimension"]) == pytest.approx(result["kl"], rel=1e-5)
    # A full-covariance posterior does not factorize: no per-dimension KL, still A_d.
    model, x = linear
    full = tfvae.evaluate(model.exact_vae(SHIFT, STRETCH, seed=0), x, num_samples=10, verbose=0)
    assert full["kl_per_dimension"] is None
    assert len(full["posterior_mean_variance"]) == full["active_units"] == 2
