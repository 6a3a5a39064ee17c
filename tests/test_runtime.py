"""The onnxruntime Sampler: same distribution as Keras, checksums, no TensorFlow."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.test_export import LIKELIHOODS, _data, _export, trained_vae
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


def test_continuous_bernoulli_inverse_cdf_matches_the_density():
    """The numpy inverse-CDF draw against the closed-form mean and a KS test."""
    from scipy import stats

    from tfvae.runtime import LIKELIHOOD_SAMPLERS

    rng = np.random.default_rng(0)
    for logit in (-3.0, -0.2, 1e-6, 2.5):
        draws = LIKELIHOOD_SAMPLERS["continuous_bernoulli"](
            {"logits": np.full(40_000, logit)}, {}, rng
        )
        lam = 1 / (1 + np.exp(-logit))

        def cdf(x, lam=lam, logit=logit):
            if abs(logit) < 1e-4:
                return x
            return (lam**x * (1 - lam) ** (1 - x) + lam - 1) / (2 * lam - 1)

        assert stats.kstest(draws, cdf).pvalue > 1e-3


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
        f"Received: {name} with 1 entries outside it ({value:g} at index "
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
        "continuous_bernoulli": {"low": 0.0, "high": 1.0, "integer": False},
        "gaussian": {"low": None, "high": None, "integer": False},
        "gaussian_learned_scale": {"low": None, "high": None, "integer": False},
    }
    texts = {name: likelihoods.get(name).support for name in declared}
    assert texts == {
        "bernoulli": "in [0, 1]",
        "binomial": "to be integers in [0, 16]",
        "continuous_bernoulli": "in [0, 1]",
        "gaussian": "finite",
        "gaussian_learned_scale": "finite",
    }
