"""The onnxruntime Sampler: same distribution as Keras, checksums, no TensorFlow."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tfvae
from tests.test_export import LIKELIHOODS, _data, _export, trained_vae
from tfvae import export
from tfvae.runtime import BundleError, Sampler

N = 10_000


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """One exported bundle (and its Keras model) per likelihood family."""
    made = {}
    for name in sorted(LIKELIHOODS):
        folder = tmp_path_factory.mktemp(name)
        vae = trained_vae(name)
        made[name] = (vae, _export(vae, folder, name))
    return made


@pytest.mark.parametrize("likelihood_name", sorted(LIKELIHOODS))
def test_runtime_samples_match_keras_samples_in_distribution(bundles, likelihood_name):
    """Per-pixel means of 10,000 draws agree within 4 standard errors of the difference."""
    vae, bundle = bundles[likelihood_name]
    ours = Sampler.load(bundle).sample(N, seed=0)
    keras_draws = vae.sample(N, seed=1).numpy()
    assert ours.shape == keras_draws.shape == (N, 8, 8, 1)
    difference = ours.mean(axis=0) - keras_draws.mean(axis=0)
    standard_error = np.sqrt((ours.var(axis=0) + keras_draws.var(axis=0)) / N)
    z_scores = np.abs(difference) / np.maximum(standard_error, 1e-12)
    assert z_scores.max() < 4.5, z_scores.max()  # 64 pixels: max of 64 |z| rarely > 4.5
    # The draws are not the means: each family's noise is present.
    assert np.mean(np.abs(ours - Sampler.load(bundle).sample(N, seed=0, mean=True))) > 1e-3


def test_runtime_support_of_draws(bundles):
    bernoulli = Sampler.load(bundles["bernoulli"][1]).sample(500, seed=0)
    assert set(np.unique(bernoulli)) <= {0.0, 1.0}
    binomial = Sampler.load(bundles["binomial"][1]).sample(500, seed=0)
    assert np.all(binomial == np.round(binomial)) and binomial.min() >= 0 and binomial.max() <= 16
    continuous = Sampler.load(bundles["continuous_bernoulli"][1]).sample(500, seed=0)
    assert continuous.min() >= 0 and continuous.max() <= 1


def test_seeded_sampling_is_reproducible(bundles):
    sampler = Sampler.load(bundles["gaussian"][1])
    np.testing.assert_array_equal(sampler.sample(8, seed=3), sampler.sample(8, seed=3))
    assert not np.array_equal(sampler.sample(8, seed=3), sampler.sample(8, seed=4))
    cold = sampler.sample_latents(4000, seed=0, temperature=0.5)
    assert cold.std() == pytest.approx(0.5, rel=0.05)


def test_batch_sizes_one_and_4096(bundles):
    vae, bundle = bundles["bernoulli"]
    sampler = Sampler.load(bundle)
    for n in (1, 4096):
        z = np.random.default_rng(n).normal(size=(n, 3)).astype("float32")
        np.testing.assert_allclose(sampler.mean(z), vae.decode(z).mean().numpy(), atol=1e-5)
    assert sampler.sample(4096, seed=0).shape == (4096, 8, 8, 1)


@pytest.mark.parametrize("shape", [(5, 2), (5, 4), (3,), (2, 3, 1)])
def test_wrong_z_shape_names_the_latent_size(bundles, shape):
    sampler = Sampler.load(bundles["bernoulli"][1])
    with pytest.raises(ValueError, match=r"z of shape \(batch_size, latent_dim=3\)"):
        sampler.decode(np.zeros(shape))


def test_wrong_x_shape_names_the_data_shape(bundles):
    sampler = Sampler.load(bundles["bernoulli"][1])
    with pytest.raises(ValueError, match=r"x of shape \(batch_size, \*\(8, 8, 1\)\)"):
        sampler.encode(np.zeros((2, 64)))


def test_reconstruct_and_interpolate_follow_the_posterior_means(bundles):
    vae, bundle = bundles["bernoulli"]
    sampler = Sampler.load(bundle)
    x = _data("bernoulli", n=2, seed=9)
    np.testing.assert_allclose(sampler.reconstruct(x), vae(x).numpy(), atol=1e-5)
    path = sampler.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(path[[0, -1]], vae(x).numpy(), atol=1e-5)
    loc = vae.encode(x).mean().numpy()
    np.testing.assert_allclose(
        path[2], vae.decode(loc.mean(axis=0, keepdims=True)).mean()[0], atol=1e-5
    )


@pytest.mark.parametrize(
    "name", ["decoder.onnx", "encoder.onnx", "manifest.json", "manifest.sha256"]
)
def test_one_flipped_byte_in_any_file_is_refused_by_name(bundles, tmp_path, name):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], bundle)
    path = bundle / name
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    path.write_bytes(bytes(payload))
    with pytest.raises(BundleError, match=r"manifest\.json" if "manifest" in name else name):
        Sampler.load(bundle)


@pytest.mark.parametrize("name", ["decoder.onnx", "manifest.json", "manifest.sha256"])
def test_a_missing_file_is_refused_by_name(bundles, tmp_path, name):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], bundle)
    (bundle / name).unlink()
    with pytest.raises(BundleError, match=name.replace(".", r"\.")):
        Sampler.load(bundle)


def test_runtime_needs_no_tensorflow(bundles):
    bundle = bundles["binomial"][1]
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tensorflow"] = None  # any import of TensorFlow now fails
        sys.modules["keras"] = None
        import tfvae.runtime
        sampler = tfvae.runtime.Sampler.load({str(bundle)!r})
        x = sampler.sample(16, seed=0)
        assert x.shape == (16, 8, 8, 1), x.shape
        print(float(x.sum()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    )
    total = float(result.stdout.strip())
    assert total == float(Sampler.load(bundle).sample(16, seed=0).sum())


def test_manifest_format_version_is_checked(bundles, tmp_path):
    import hashlib
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format_version"] = 99
    text = json.dumps(manifest)
    (bundle / "manifest.json").write_text(text)
    (bundle / "manifest.sha256").write_text(hashlib.sha256(text.encode()).hexdigest())
    with pytest.raises(BundleError, match="format_version 99"):
        Sampler.load(bundle)


# ------------------------------------------------------------------------ input checks


@pytest.fixture(scope="module")
def conditional_bundle(tmp_path_factory):
    """A tiny conditional (condition_shape=(2,)) Bernoulli bundle, built by one call."""
    import keras

    import tfvae

    keras.utils.set_random_seed(0)
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,)),
        tfvae.networks.mlp_decoder((8,)),
        latent_dim=3,
        condition_shape=(2,),
        seed=0,
    )
    x = _data("bernoulli", n=4)
    vae((x, np.eye(2, dtype="float32")[[0, 1, 0, 1]]))
    return _export(vae, tmp_path_factory.mktemp("conditional"), "bernoulli")


def _with_entry(shape, index, value):
    array = np.zeros(shape, dtype=np.float32)
    array[index] = value
    return array


@pytest.mark.parametrize("method", ["decode", "mean"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_z_is_refused_by_name(bundles, method, value):
    sampler = Sampler.load(bundles["bernoulli"][1])
    z = _with_entry((2, 3), (0, 1), value)
    z[1, 2] = value

    with pytest.raises(ValueError) as info:
        getattr(sampler, method)(z)

    assert str(info.value) == (
        f"Expected z to be finite. Received: z with 2 non-finite entries "
        f"({value:g} at index (0, 1))"
    )


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_condition_is_refused_by_name(conditional_bundle, value):
    sampler = Sampler.load(conditional_bundle)
    condition = np.array([1.0, value], dtype=np.float32)
    message = (
        rf"Expected condition to be finite\. Received: condition with 1 non-finite .*{value:g}"
    )

    with pytest.raises(ValueError, match=message):
        sampler.sample(4, seed=0, condition=condition)
    with pytest.raises(ValueError, match=message):
        sampler.decode(np.zeros((2, 3)), condition=condition)
    with pytest.raises(ValueError, match=message):
        sampler.encode(_data("bernoulli", n=2), condition=condition)
    # Finite conditions still work, one for all or one per sample.
    assert sampler.sample(4, seed=0, condition=np.array([1.0, 0.0])).shape == (4, 8, 8, 1)
    assert sampler.mean(np.zeros((2, 3)), condition=np.eye(2)).shape == (2, 8, 8, 1)


def _x_calls(sampler, x, argument):
    """Calls the public method that receives `x` as `argument`."""
    other = np.zeros_like(x[0])
    return {
        "x": lambda: sampler.encode(x),
        "x (reconstruct)": lambda: sampler.reconstruct(x),
        "x_a": lambda: sampler.interpolate(x[0], other, steps=3),
        "x_b": lambda: sampler.interpolate(other, x[0], steps=3),
    }[argument]


X_ARGUMENTS = ["x", "x (reconstruct)", "x_a", "x_b"]


@pytest.mark.parametrize("argument", X_ARGUMENTS)
@pytest.mark.parametrize("likelihood_name", ["gaussian", "binomial"])
def test_non_finite_x_is_refused_by_name(bundles, likelihood_name, argument):
    sampler = Sampler.load(bundles[likelihood_name][1])
    x = _with_entry((2, 8, 8, 1), (0, 3, 4, 0), np.nan)
    name = argument.split()[0]

    with pytest.raises(ValueError) as info:
        _x_calls(sampler, x, argument)()

    index = "(0, 3, 4, 0)" if name == "x" else "(3, 4, 0)"
    assert str(info.value) == (
        f"Expected {name} to be finite. Received: {name} with 1 non-finite entries "
        f"(nan at index {index})"
    )


@pytest.mark.parametrize("argument", X_ARGUMENTS)
@pytest.mark.parametrize(
    ("likelihood_name", "value", "support"),
    [
        ("bernoulli", 1.5, "reals in [0, 1]"),
        ("bernoulli", -0.1, "reals in [0, 1]"),
        ("continuous_bernoulli", -0.1, "reals in [0, 1]"),
        ("continuous_bernoulli", 1.01, "reals in [0, 1]"),
        ("binomial", 17.0, "integers in [0, 16]"),
        ("binomial", 2.5, "integers in [0, 16]"),
        ("binomial", -1.0, "integers in [0, 16]"),
    ],
)
def test_x_outside_the_support_is_refused_by_name(
    bundles, likelihood_name, value, support, argument
):
    sampler = Sampler.load(bundles[likelihood_name][1])
    x = _with_entry((2, 8, 8, 1), (0, 0, 5, 0), value)
    name = argument.split()[0]

    with pytest.raises(ValueError) as info:
        _x_calls(sampler, x, argument)()

    message = str(info.value)
    assert message.startswith(
        f"Expected {name} in the support of the {likelihood_name!r} likelihood: {support}. "
        f"Received: {name} with 1 of {x[0].size if name != 'x' else x.size} entries outside "
        f"it ({value:g} at index "
    )


@pytest.mark.parametrize(
    ("likelihood_name", "values"),
    [
        ("bernoulli", [0.0, 0.5, 1.0]),  # grey levels: the cross-entropy objective
        ("continuous_bernoulli", [0.0, 0.25, 1.0]),
        ("binomial", [0.0, 7.0, 16.0]),
        ("gaussian", [-1e6, 0.0, 1e6]),
        ("gaussian_learned_scale", [-3.0, 0.5, 40.0]),
    ],
)
def test_x_in_the_support_passes_every_call(bundles, likelihood_name, values):
    sampler = Sampler.load(bundles[likelihood_name][1])
    x = np.resize(np.asarray(values, dtype=np.float32), (2, 8, 8, 1))

    loc, scale = sampler.encode(x)
    reconstruction = sampler.reconstruct(x)
    path = sampler.interpolate(x[0], x[1], steps=3)

    assert loc.shape == scale.shape == (2, 3) and np.isfinite(loc).all()
    assert reconstruction.shape == (2, 8, 8, 1) and np.isfinite(reconstruction).all()
    assert path.shape == (3, 8, 8, 1) and np.isfinite(path).all()


def test_manifest_records_each_family_support(bundles):
    for vae, bundle in bundles.values():
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["likelihood"]["support"] == vae.likelihood.support_bounds()


def test_a_bundle_without_a_support_record_checks_finiteness_only(bundles, tmp_path):
    """Bundles written before the support was recorded: no support check, still finite."""
    import hashlib
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(bundles["binomial"][1], bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["likelihood"]["support"]
    text = json.dumps(manifest)
    (bundle / "manifest.json").write_text(text)
    (bundle / "manifest.sha256").write_text(hashlib.sha256(text.encode()).hexdigest())
    sampler = Sampler.load(bundle)

    assert sampler.encode(np.full((1, 8, 8, 1), 2.5))[0].shape == (1, 3)
    with pytest.raises(ValueError, match=r"Expected x to be finite"):
        sampler.encode(np.full((1, 8, 8, 1), np.inf))


MIXED = np.array(
    [-1.0, -0.0, 0.0, 0.3, 1.0, 1.5, 2.0, 4.0, 16.0, 16.5, 17.0, 255.0, np.inf, -np.inf, np.nan]
)


def _families():
    from tfvae import likelihoods

    made = [likelihoods.get(name) for name in likelihoods.registry.names()]
    return [*made, likelihoods.Binomial(total_count=4)]


@pytest.mark.parametrize("likelihood", _families(), ids=repr)
def test_runtime_support_check_agrees_with_the_family(likelihood):
    """The numpy check on the manifest's record and the family's TF `in_support`."""
    import tensorflow as tf

    from tfvae.runtime import in_support

    bounds = json.loads(json.dumps(likelihood.support_bounds()))  # as the manifest has it

    expected = likelihood.in_support(tf.constant(MIXED, dtype=tf.float32)).numpy()

    np.testing.assert_array_equal(in_support(MIXED.astype(np.float32), bounds), expected)
    assert set(bounds) == {"low", "high", "integer"}


def test_every_registered_family_declares_its_support():
    from tfvae import likelihoods

    declared = {
        name: likelihoods.get(name).support_bounds() for name in likelihoods.registry.names()
    }

    assert declared == {
        "bernoulli": {"low": 0.0, "high": 1.0, "integer": False},
        "binomial": {"low": 0.0, "high": 16.0, "integer": True},
        "categorical": {"low": 0.0, "high": 16.0, "integer": True},
        "continuous_bernoulli": {"low": 0.0, "high": 1.0, "integer": False},
        "gaussian": {"low": None, "high": None, "integer": False},
        "gaussian_learned_scale": {"low": None, "high": None, "integer": False},
    }
    texts = {name: likelihoods.get(name).support for name in declared}
    assert texts == {
        "bernoulli": "reals in [0, 1]",
        "binomial": "integers in [0, 16]",
        "categorical": "integers in [0, 16]",
        "continuous_bernoulli": "reals in [0, 1]",
        "gaussian": "finite reals",
        "gaussian_learned_scale": "finite reals",
    }


# ----------------------------------------------------- draws, by distribution

DRAWS = 4000


def _sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def _chi_square_pvalue(draws, values, probabilities):
    """Pearson's chi-squared test of integer draws against a pmf on `values`, with
    adjacent cells pooled until each expects at least 5 draws."""
    from scipy import stats

    observed = np.array([np.count_nonzero(draws == v) for v in values], dtype=float)
    assert observed.sum() == len(draws), "a draw fell outside the support"
    expected = probabilities * len(draws)
    cells_observed, cells_expected, o, e = [], [], 0.0, 0.0
    for count, mean in zip(observed, expected, strict=True):
        o, e = o + count, e + mean
        if e >= 5:
            cells_observed.append(o)
            cells_expected.append(e)
            o = e = 0.0
    if cells_expected:
        cells_observed[-1] += o
        cells_expected[-1] += e
    if len(cells_expected) < 2:  # (nearly) all the mass in one cell: nothing to test
        return 1.0
    cells_expected = np.array(cells_expected) * sum(cells_observed) / sum(cells_expected)
    return stats.chisquare(cells_observed, cells_expected).pvalue


def _continuous_bernoulli_cdf(x, logit):
    lam = _sigmoid(logit)
    if abs(logit) < 1e-4:
        return x
    return (lam**x * (1 - lam) ** (1 - x) + lam - 1) / (2 * lam - 1)


def _expected(name, params, index):
    """(p-value function of the draws, variance) for one pixel, from its exported
    parameters alone, with scipy and closed forms."""
    from scipy import stats

    if name == "gaussian":
        loc, scale = float(params["loc"][index]), 0.5
        return (lambda d: stats.kstest(d, stats.norm(loc, scale).cdf).pvalue), scale**2
    if name == "gaussian_learned_scale":
        loc, scale = float(params["loc"][index]), float(params["scale"][index])
        return (lambda d: stats.kstest(d, stats.norm(loc, scale).cdf).pvalue), scale**2
    if name == "continuous_bernoulli":
        logit = float(params["logits"][index])
        grid = np.linspace(0, 1, 20001)
        density = np.gradient(_continuous_bernoulli_cdf(grid, logit), grid)
        mean = np.trapezoid(grid * density, grid)
        variance = np.trapezoid(grid**2 * density, grid) - mean**2
        return (lambda d: stats.kstest(d, lambda x: _continuous_bernoulli_cdf(x, logit)).pvalue), (
            variance
        )
    if name == "categorical":
        logits = np.asarray(params["logits"][index], dtype=np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        values = np.arange(len(probabilities))
    else:  # bernoulli and binomial(16): binomial pmfs of their trials
        trials = 1 if name == "bernoulli" else 16
        values = np.arange(trials + 1)
        probabilities = stats.binom(trials, _sigmoid(params["logits"][index])).pmf(values)
    mean = np.sum(values * probabilities)
    variance = np.sum(values**2 * probabilities) - mean**2
    return (lambda d: _chi_square_pvalue(d, values, probabilities)), variance


@pytest.mark.parametrize("likelihood_name", sorted(LIKELIHOODS))
def test_runtime_draws_follow_the_exported_parameters(bundles, likelihood_name):
    """x ~ p(x|z) at one z, every pixel tested against the distribution its exported
    parameters give: chi-squared (discrete) or KS (continuous), and the variance."""
    _, bundle = bundles[likelihood_name]
    sampler = Sampler.load(bundle)
    z = np.repeat(sampler.sample_latents(1, seed=5), DRAWS, axis=0)
    draws = sampler.sample_given(z, seed=6).reshape(DRAWS, -1).astype(np.float64)  # [N, 64]
    params = {
        name: value[0].reshape(64, *value.shape[len(sampler.data_shape) + 1 :])
        for name, value in sampler.decode(z[:1]).items()
    }
    p_values, draw_variances, variances = [], [], []
    for pixel in range(64):
        p_value, variance = _expected(likelihood_name, params, pixel)
        p_values.append(p_value(draws[:, pixel]))
        draw_variances.append(draws[:, pixel].var())
        variances.append(variance)
    # 64 tests: the smallest p-value falls below 1e-4 by chance with probability < 0.007.
    assert min(p_values) > 1e-4, (min(p_values), int(np.argmin(p_values)))
    # The pooled variance over 64 pixels x 4000 draws: a sampler that drops or doubles
    # a scale is off by far more than the 3% allowed.
    assert sum(draw_variances) / sum(variances) == pytest.approx(1.0, abs=0.03)


@pytest.fixture(scope="module")
def mixture_bundle(tmp_path_factory):
    vae = trained_vae("gaussian", prior=tfvae.priors.Mixture(num_components=3, seed=2))
    return vae, _export(vae, tmp_path_factory.mktemp("mixture"), "gaussian")


def _mixture_cdf(params, dimension, temperature):
    from scipy import stats

    weights = np.exp(np.asarray(params["logits"]) - np.max(params["logits"]))
    weights /= weights.sum()
    locs = np.asarray(params["locs"])[:, dimension]
    scales = temperature * np.asarray(params["scales"])[:, dimension]
    mean = np.sum(weights * locs)
    variance = np.sum(weights * (scales**2 + locs**2)) - mean**2

    def cdf(z):
        return np.sum(weights * stats.norm(locs, scales).cdf(np.asarray(z)[..., None]), axis=-1)

    return cdf, variance


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("prior", ["standard_normal", "mixture"])
def test_runtime_prior_draws_follow_the_exported_prior(bundles, mixture_bundle, prior, temperature):
    """z ~ p(z) per dimension against the prior's CDF (KS), and its variance."""
    from scipy import stats

    if prior == "mixture":
        vae, bundle = mixture_bundle
        params = json.loads((bundle / "manifest.json").read_text())["prior"]["parameters"]
        np.testing.assert_allclose(params["locs"], vae.prior_layer.parameters()["locs"])
        assert np.ptp(np.asarray(params["locs"])) > 1.0  # distinct means: dropping them shows
    else:
        bundle = bundles["bernoulli"][1]
    sampler = Sampler.load(bundle)
    z = sampler.sample_latents(20_000, seed=3, temperature=temperature).astype(np.float64)
    assert z.shape == (20_000, 3)
    for dimension in range(3):
        if prior == "mixture":
            cdf, variance = _mixture_cdf(params, dimension, temperature)
        else:
            cdf, variance = stats.norm(0, temperature).cdf, temperature**2
        assert stats.kstest(z[:, dimension], cdf).pvalue > 1e-3
        assert z[:, dimension].var() == pytest.approx(variance, rel=0.05)


def _shared_latent_estimates(vae, sampler, x, num_samples, seed):
    """log p(x) estimates by Keras and by the runtime from the same latents z ~ q(z|x)."""
    from scipy.special import logsumexp

    params = vae.posterior_parameters(x)
    z = vae.posterior_samples(params, num_samples, tfvae.random.as_seed(seed))  # [L, n, D]
    log_weights = vae.latent_terms_given(x, params, num_samples, tfvae.random.as_seed(seed))
    keras_estimate = logsumexp(log_weights.log_weights.numpy(), axis=0) - np.log(num_samples)
    ours = logsumexp(sampler.log_weights(x, z.numpy()), axis=0) - np.log(num_samples)
    return ours, keras_estimate


@pytest.mark.parametrize("which", ["binomial", "mixture"])
def test_log_likelihood_agrees_with_the_keras_model_on_shared_latents(
    bundles, mixture_bundle, which
):
    """The runtime's log-weights (numpy densities of the ONNX outputs) against Keras's
    on the same 5000 latents per example: equal to float32 rounding, so the runtime's
    estimate is `VAE.log_likelihood`'s whenever the noise is the same."""
    vae, bundle = mixture_bundle if which == "mixture" else bundles["binomial"]
    sampler = Sampler.load(bundle)
    x = _data("gaussian" if which == "mixture" else "binomial", n=8, seed=3)
    ours, keras_estimate = _shared_latent_estimates(vae, sampler, x, 5000, seed=0)
    np.testing.assert_allclose(ours, keras_estimate, atol=0.01)
    # With independent noise the two differ by Monte Carlo error only; this 1-epoch model's
    # poor encoder makes that error large, so only the estimates' scale is compared here
    # (the linear-Gaussian test below compares them per example).
    independent = sampler.log_likelihood(x, num_samples=5000, seed=1)
    assert np.all(np.abs(independent - keras_estimate) < 0.05 * np.abs(keras_estimate))


# --------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def linear_bundle(tmp_path_factory):
    """The exact linear-Gaussian model with an imperfect full-covariance posterior."""
    from tests.test_model import LinearGaussian

    model = LinearGaussian()
    x = model.data(16)
    vae = model.exact_vae(shift=np.array([0.4, -0.3]), stretch=1.5, seed=0)
    vae(x)
    folder = tmp_path_factory.mktemp("linear")
    bundle = export.export_model(
        vae, out_dir=folder / "bundle", saved_model_dir=folder / "saved", x_reference=x
    )
    return model, x, vae, bundle


def test_log_likelihood_reaches_the_exact_log_marginal(linear_bundle):
    model, x, vae, bundle = linear_bundle
    exact = model.log_marginal(x)
    ours = Sampler.load(bundle).log_likelihood(x, num_samples=5000, seed=0)
    keras_estimate = vae.log_likelihood(x, num_samples=5000, seed=1).numpy()
    np.testing.assert_allclose(ours, exact, atol=0.1)
    np.testing.assert_allclose(keras_estimate, exact, atol=0.1)
    np.testing.assert_allclose(ours, keras_estimate, atol=0.05)


def test_elbo_is_exact_with_the_exact_posterior(tmp_path):
    """With q(z|x) the exact posterior every importance weight equals p(x): the ELBO
    and the estimate are log p(x) whatever the noise."""
    from tests.test_model import LinearGaussian

    model = LinearGaussian()
    x = model.data(8)
    vae = model.exact_vae(seed=0)
    vae(x)
    bundle = export.export_model(
        vae, out_dir=tmp_path / "b", saved_model_dir=tmp_path / "s", x_reference=x
    )
    sampler = Sampler.load(bundle)
    exact = model.log_marginal(x)
    np.testing.assert_allclose(sampler.elbo(x, num_samples=3, seed=0), exact, atol=2e-3)
    np.testing.assert_allclose(sampler.log_likelihood(x, num_samples=7, seed=1), exact, atol=2e-3)


def test_elbo_matches_the_closed_form_of_the_linear_model(linear_bundle):
    """ELBO = log p(x) - KL(q(z|x) || p(z|x)); for q = N(m + shift, stretch^2 S) and the
    exact posterior N(m, S) that KL is (stretch^2 d + shift' S^-1 shift - d
    - 2 d log stretch) / 2, the same for every x."""
    model, x, vae, bundle = linear_bundle
    shift, stretch, d = np.array([0.4, -0.3]), 1.5, 2
    kl = 0.5 * (
        stretch**2 * d + shift @ np.linalg.solve(model.S, shift) - d - 2 * d * np.log(stretch)
    )
    exact = model.log_marginal(x) - kl
    sampler = Sampler.load(bundle)
    ours = sampler.elbo(x, num_samples=20_000, seed=0)
    np.testing.assert_allclose(ours, exact, atol=0.1)
    np.testing.assert_allclose(
        vae.elbo_terms(x, num_samples=20_000, seed=0)["elbo"], exact, atol=0.1
    )
    np.testing.assert_array_equal(ours, sampler.elbo(x, num_samples=20_000, seed=0))
    assert np.all(ours < sampler.log_likelihood(x, num_samples=2000, seed=1))


def test_scores_check_their_inputs(bundles):
    sampler = Sampler.load(bundles["binomial"][1])
    with pytest.raises(ValueError, match=r"Expected x in the support .* integers in \[0, 16\]"):
        sampler.log_likelihood(np.full((2, 8, 8, 1), 2.5), num_samples=4)
    with pytest.raises(ValueError, match=r"Expected num_samples to be a positive integer"):
        sampler.elbo(np.zeros((2, 8, 8, 1)), num_samples=0)


def test_an_unknown_family_is_a_clear_bundle_error(bundles, tmp_path):
    import shutil

    from tfvae import bundle as bundle_format

    folder = tmp_path / "bundle"
    shutil.copytree(bundles["bernoulli"][1], folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["likelihood"]["family"] = "poisson"
    bundle_format.write_manifest(folder, manifest)
    with pytest.raises(
        BundleError, match=r"manifest\.json: Unknown likelihood 'poisson'.*imported"
    ):
        Sampler.load(folder)


# ------------------------------------------------------ the runtime-only install

REPOSITORY = Path(__file__).resolve().parent.parent


def test_the_runtime_only_install_loads_verifies_samples_and_scores(bundles, tmp_path):
    """`pip install tfvae` (the base install, as the README documents it for deployment
    hosts) into a fresh virtual environment: no TensorFlow, Keras or TFP is installed,
    and the Sampler still verifies a bundle, refuses an altered one, samples and scores,
    from Python and from the `tfvae` command line."""
    import shutil

    source = tmp_path / "source"  # what a wheel is built from, outside the working tree
    shutil.copytree(
        REPOSITORY / "tfvae", source / "tfvae", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPOSITORY / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    vae, bundle = bundles["binomial"]
    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    payload = bytearray((altered / "decoder.onnx").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (altered / "decoder.onnx").write_bytes(bytes(payload))
    np.save(tmp_path / "x.npy", _data("binomial", n=4, seed=3))
    script = textwrap.dedent(
        f"""
        import importlib.util, sys
        import numpy as np
        missing = [m for m in ("tensorflow", "keras", "tensorflow_probability", "tf2onnx")
                   if importlib.util.find_spec(m) is not None]
        assert missing == [], missing
        from tfvae.runtime import BundleError, Sampler
        try:
            Sampler.load({str(altered)!r})
        except BundleError as error:
            assert "decoder.onnx" in str(error), error
        else:
            raise AssertionError("an altered bundle was loaded")
        sampler = Sampler.load({str(bundle)!r})
        x = sampler.sample(16, seed=0)
        assert x.shape == (16, 8, 8, 1), x.shape
        scores = sampler.log_likelihood(np.load({str(tmp_path / "x.npy")!r}), 200, seed=0)
        print(float(x.sum()), *scores)
        loaded = [m for m in ("tensorflow", "keras") if m in sys.modules]
        assert loaded == [], loaded
        """
    )
    result = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    total, *scores = (float(value) for value in result.stdout.split())
    here = Sampler.load(bundle)
    assert total == float(here.sample(16, seed=0).sum())
    expected = here.log_likelihood(_data("binomial", n=4, seed=3), 200, seed=0)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)

    tfvae_command = str(venv / "bin" / "tfvae")
    png = tmp_path / "samples.png"
    sample = subprocess.run(
        [tfvae_command, "sample", "--bundle", str(bundle), "-n", "4", "--out", str(png)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sample.returncode == 0, sample.stderr[-3000:]
    assert png.read_bytes().startswith(b"\x89PNG")
    score = subprocess.run(
        [tfvae_command, "score", "--bundle", str(bundle), str(tmp_path / "x.npy")]
        + ["--num-samples", "200", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert score.returncode == 0, score.stderr[-3000:]
    rows = score.stdout.strip().splitlines()
    assert rows[0] == "index,elbo,log_likelihood" and len(rows) == 5
    np.testing.assert_allclose([float(row.split(",")[2]) for row in rows[1:]], expected, rtol=1e-6)
    train = subprocess.run(
        [tfvae_command, "train", "--epochs", "1"], capture_output=True, text=True, timeout=300
    )
    assert train.returncode == 1, train.stderr[-3000:]
    assert "pip install 'tfvae[train]'" in train.stderr and "Traceback" not in train.stderr


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, True])
def test_seeds_share_the_one_range_of_tfvae(bundles, seed):
    sampler = Sampler.load(bundles["bernoulli"][1])
    with pytest.raises(ValueError, match=r"Expected seed to be an integer in \[0, 2147483647\]"):
        sampler.sample(2, seed=seed)
    assert sampler.sample(2, seed=2**31 - 1).shape == (2, 8, 8, 1)


def test_categorical_runtime_draws_match_keras_draws_level_by_level(bundles):
    """The runtime's draws and Keras's from the same bundle's model: for each pixel, a
    chi-squared test of the two samples' counts per grey level (a 2 x 17 table)."""
    from scipy import stats

    vae, bundle = bundles["categorical"]
    ours = Sampler.load(bundle).sample(N, seed=0).reshape(N, -1).astype(int)
    theirs = vae.sample(N, seed=1).numpy().reshape(N, -1).astype(int)
    p_values = []
    for pixel in range(64):
        table = np.array([np.bincount(d[:, pixel], minlength=17) for d in (ours, theirs)])
        table = table[:, table.sum(axis=0) > 0]  # levels neither sample drew
        p_values.append(1.0 if table.shape[1] < 2 else stats.chi2_contingency(table).pvalue)
    assert min(p_values) > 1e-4, min(p_values)  # 64 tests at 1e-4: false alarm < 0.7%
