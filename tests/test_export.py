"""Export: SavedModel and ONNX agree with Keras; failed exports change nothing."""

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf
import tf2onnx

import tfvae
from tests.helpers import tree_snapshot, user_files
from tests.test_priors import TwoLayerLinearGaussian
from tfvae import export, outputs
from tfvae.runtime import Sampler

LIKELIHOODS = {
    "bernoulli": "bernoulli",
    "continuous_bernoulli": "continuous_bernoulli",
    "gaussian": tfvae.likelihoods.Gaussian(scale=0.5),
    "gaussian_learned_scale": "gaussian_learned_scale",
    "binomial": tfvae.likelihoods.Binomial(total_count=16),
    "categorical": tfvae.likelihoods.Categorical(num_levels=17),
}


def _data(likelihood_name, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 1)).astype("float32")
    if likelihood_name == "bernoulli":
        return (x < 0.3).astype("float32")
    if likelihood_name in ("binomial", "categorical"):
        return np.floor(x * 17).astype("float32")
    return x


def trained_vae(likelihood_name="bernoulli", architecture="mlp", seed=0, **kwargs):
    """A small VAE after one epoch, so no weight is at its initial value. Trained without
    XLA: the weights are all that matters here, and XLA's compile took 5 s of the 6."""
    keras.utils.set_random_seed(seed)
    if architecture == "conv":
        networks = tfvae.networks.conv_encoder((4, 8)), tfvae.networks.conv_decoder((8, 4))
    else:
        networks = tfvae.networks.mlp_encoder((16,)), tfvae.networks.mlp_decoder((16,))
    vae = tfvae.VAE(
        *networks, latent_dim=3, likelihood=LIKELIHOODS[likelihood_name], seed=seed, **kwargs
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
    vae.fit(_data(likelihood_name), batch_size=32, epochs=1, verbose=0)
    return vae


@pytest.fixture(scope="module")
def small_vae():
    """trained_vae(), shared by the tests that export it without changing it."""
    return trained_vae()


@pytest.fixture(scope="module")
def retrained_vae():
    """small_vae's model trained again from another seed: other weights to export."""
    return trained_vae(seed=1)


def _export(vae, tmp_path, likelihood_name="bernoulli", **kwargs):
    return export.export_model(
        vae,
        out_dir=tmp_path / "export" / "m",
        saved_model_dir=tmp_path / "saved_models" / "m",
        x_reference=_data(likelihood_name, seed=1),
        **kwargs,
    )


# Every family with the MLP; the conv networks with one family per output layout (one
# parameter per value, two, and a vector of levels): the head is the family's, whatever
# the network. Each case took 12-34 s in a `pytest --durations=0` run.
AGREEMENT_CASES = [(name, "mlp") for name in sorted(LIKELIHOODS)] + [
    ("bernoulli", "conv"),
    ("gaussian_learned_scale", "conv"),
    ("categorical", "conv"),
]


@pytest.mark.slow
@pytest.mark.parametrize("likelihood_name, architecture", AGREEMENT_CASES)
def test_keras_saved_model_and_onnx_agree(tmp_path, likelihood_name, architecture):
    vae = trained_vae(likelihood_name, architecture)
    bundle = _export(vae, tmp_path, likelihood_name, atol=1e-5)

    z = np.random.default_rng(5).normal(size=(17, 3)).astype("float32")
    x = _data(likelihood_name, n=9, seed=6)
    params = {k: v.numpy() for k, v in vae.likelihood_parameters(z).items()}
    params["mean"] = vae.decode(z).mean().numpy()
    posterior = {k: v.numpy() for k, v in vae.posterior_parameters(x).items()}

    loaded = tf.saved_model.load(str(tmp_path / "saved_models" / "m" / "1"))
    saved_decode = loaded.signatures["decode"](z=tf.constant(z))
    saved_default = loaded.signatures["serving_default"](z=tf.constant(z))
    saved_encode = loaded.signatures["encode"](x=tf.constant(x))
    sampler = Sampler.load(bundle)
    onnx_decode = sampler.decode(z)
    onnx_loc, onnx_scale = sampler.encode(x)

    assert set(onnx_decode) == set(params) == set(saved_decode)
    assert set(params) == {*vae.likelihood.param_names, "mean"}
    for key, value in params.items():
        assert onnx_decode[key].shape == value.shape and value.shape[:4] == (17, 8, 8, 1)
        np.testing.assert_allclose(saved_decode[key].numpy(), value, atol=1e-5)
        np.testing.assert_allclose(saved_default[key].numpy(), value, atol=1e-5)
        np.testing.assert_allclose(onnx_decode[key], value, atol=1e-5)
    for key, value in posterior.items():
        np.testing.assert_allclose(saved_encode[key].numpy(), value, atol=1e-5)
    np.testing.assert_allclose(onnx_loc, posterior["loc"], atol=1e-5)
    np.testing.assert_allclose(onnx_scale, posterior["scale"], atol=1e-5)

    manifest = json.loads((bundle / "manifest.json").read_text())
    for by_component in manifest["parity"]["max_abs_error"].values():
        assert set(by_component) == {"decoder", "encoder"}
        assert max(by_component.values()) <= 1e-5
    for name in ("decoder.onnx", "encoder.onnx"):
        onnx.checker.check_model(str(bundle / name))


@pytest.mark.slow
def test_manifest_records_the_model(tmp_path):
    vae = trained_vae(
        "binomial",
        prior=tfvae.priors.Mixture(num_components=2, seed=0),
        posterior="full_covariance",
    )
    bundle = _export(vae, tmp_path, "binomial")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format_version"] == 1  # tfvae.bundle.FORMAT_VERSION
    assert manifest["latent_dim"] == 3
    assert manifest["data"] == {"shape": [8, 8, 1], "dtype": "float32", "range": [0.0, 16.0]}
    assert manifest["likelihood"] == {
        "family": "binomial",
        "parameters": ["logits"],
        "constants": {"total_count": 16},
        "support": {"low": 0.0, "high": 16.0, "integer": True},
    }
    assert manifest["posterior"]["family"] == "full_covariance"
    prior = manifest["prior"]
    assert prior["family"] == "mixture"
    np.testing.assert_allclose(prior["parameters"]["locs"], vae.prior_layer.locs.numpy())
    np.testing.assert_allclose(
        prior["parameters"]["scales"],
        np.log1p(np.exp(vae.prior_layer.raw_scales.numpy())) + 1e-3,
        rtol=1e-5,
    )
    assert manifest["versions"]["tensorflow"] == tf.__version__
    assert manifest["onnx"]["decoder"] == {
        "file": "decoder.onnx",
        "inputs": ["z"],
        "outputs": ["logits", "mean"],
    }
    assert manifest["onnx"]["encoder"]["outputs"] == ["loc", "scale_tril"]
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest
    assert sorted(manifest["files"]) == ["decoder.onnx", "encoder.onnx"]


@pytest.mark.slow
def test_saved_model_loads_in_a_process_without_tfvae(small_vae, tmp_path):
    vae = small_vae
    _export(vae, tmp_path)
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "mean.npy", vae.decode(z).mean().numpy())
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, tensorflow as tf
        folder, z, expected = sys.argv[1:]
        model = tf.saved_model.load(folder)
        mean = model.signatures["serving_default"](z=tf.constant(np.load(z)))["mean"]
        np.testing.assert_allclose(mean.numpy(), np.load(expected), atol=1e-5)
        assert not any(name.startswith("tfvae") for name in sys.modules), "tfvae was imported"
        """
    )
    folder = tmp_path / "saved_models" / "m" / "1"
    arguments = [str(folder), str(tmp_path / "z.npy"), str(tmp_path / "mean.npy")]
    subprocess.run([sys.executable, "-c", script, *arguments], check=True)


@pytest.mark.slow
def test_parity_failure_is_an_error_and_writes_nothing(tmp_path):
    vae = trained_vae("gaussian")
    with pytest.raises(export.ExportParityError, match="exceed atol=1e-30") as error:
        _export(vae, tmp_path, "gaussian", atol=1e-30)
    assert set(error.value.errors) == {"saved_model", "onnx"}
    assert not (tmp_path / "export" / "m").exists()
    assert not (tmp_path / "saved_models" / "m" / "1").exists()
    assert [p.name for p in (tmp_path / "export").iterdir()] == []


@pytest.mark.slow
def test_interrupted_export_leaves_the_previous_bundle_byte_identical(
    small_vae, retrained_vae, tmp_path, monkeypatch
):
    bundle = _export(small_vae, tmp_path)
    saved_model = tmp_path / "saved_models" / "m" / "1"
    before, saved_before = tree_snapshot(bundle), tree_snapshot(saved_model)

    real_from_function = tf2onnx.convert.from_function
    calls = []

    def fail_after_first_file(*args, **kwargs):
        calls.append(kwargs["output_path"])
        if len(calls) == 2:
            raise KeyboardInterrupt("interrupted after decoder.onnx (test)")
        return real_from_function(*args, **kwargs)

    monkeypatch.setattr(tf2onnx.convert, "from_function", fail_after_first_file)
    with pytest.raises(KeyboardInterrupt):
        _export(retrained_vae, tmp_path)
    assert len(calls) == 2
    assert calls[0].endswith("decoder.onnx")
    assert tree_snapshot(bundle) == before
    assert tree_snapshot(saved_model) == saved_before
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["m"]
    Sampler.load(bundle)  # still a valid bundle


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"components": ()}, r"components to be a non-empty subset"),
        ({"components": ("decoder", "prior")}, r"components to be a non-empty subset"),
        ({"version": 0}, r"version to be a positive integer"),
        ({"atol": -1.0}, r"atol to be a finite number > 0"),
        ({"weights": "bfloat16"}, r"weights to be one of \['float32', 'float16', 'int8'\]"),
        ({"weights": "int8", "weights_atol": 0.0}, r"weights_atol to be a finite number > 0"),
    ],
)
def test_bad_arguments_are_rejected_before_writing(small_vae, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _export(small_vae, tmp_path, **kwargs)
    assert not (tmp_path / "export").exists()


def test_unbuilt_model_is_rejected(tmp_path):
    vae = tfvae.VAE(tfvae.networks.mlp_encoder((4,)), tfvae.networks.mlp_decoder((4,)), 2)
    with pytest.raises(ValueError, match="Expected a built model"):
        export.export_model(vae, out_dir=tmp_path / "b", saved_model_dir=tmp_path / "s")


@pytest.mark.slow
def test_decoder_only_bundle_samples_but_cannot_encode(small_vae, tmp_path):
    bundle = _export(small_vae, tmp_path, components=("decoder",))
    sampler = Sampler.load(bundle)
    assert sampler.sample(3, seed=0).shape == (3, 8, 8, 1)
    with pytest.raises(ValueError, match="no encoder"):
        sampler.encode(_data("bernoulli", n=2))


# Reduced precision: the bundle's networks in float16 or int8 weights (tfvae.precision).


def _largest_weights(path) -> tuple[int, int]:
    """(elements, bytes per element) of the largest weight tensor of an ONNX file."""
    largest = max(onnx.load(str(path)).graph.initializer, key=lambda t: np.prod(t.dims))
    array = onnx.numpy_helper.to_array(largest)
    return array.size, array.itemsize


@pytest.mark.slow
@pytest.mark.parametrize("weights, itemsize", [("float16", 2), ("int8", 1)])
def test_reduced_precision_bundle_records_its_parity_and_serves_unchanged(
    small_vae, tmp_path, weights, itemsize
):
    """The manifest records the precision and each network's error against Keras, which
    a fresh comparison on other z reproduces in size; the bundle verifies, loads and
    samples as any other, its weights stored in 2 or 1 bytes, not 4."""
    full = _export(small_vae, tmp_path / "float32")
    bundle = _export(small_vae, tmp_path / weights, weights=weights)
    record = json.loads((bundle / "manifest.json").read_text())["weights"]
    assert record["precision"] == weights and record["relative_atol"] == 0.1
    assert set(record["max_abs_error"]) == {"decoder", "encoder"}
    assert 0 < record["max_abs_error"]["decoder"] <= 0.1
    for name in ("decoder.onnx", "encoder.onnx"):
        elements, _ = _largest_weights(full / name)
        assert _largest_weights(bundle / name) == (elements, itemsize)
    sampler = Sampler.load(bundle)
    assert sampler.weights == weights and Sampler.load(full).weights == "float32"
    z = np.random.default_rng(5).normal(size=(256, 3)).astype(np.float32)
    error = np.max(np.abs(sampler.mean(z) - small_vae.decode(z).mean().numpy()))
    assert record["max_abs_error"]["decoder"] / 4 < error < 4 * record["max_abs_error"]["decoder"]
    samples = sampler.sample(100, seed=0)
    assert samples.shape == (100, 8, 8, 1) and set(np.unique(samples)) <= {0.0, 1.0}
    x = _data("bernoulli", n=8, seed=2)
    reference = Sampler.load(full).log_likelihood(x, num_samples=200, seed=0)
    assert np.all(np.abs(sampler.log_likelihood(x, num_samples=200, seed=0) - reference) < 1.0)


def test_reduced_precision_beyond_its_tolerance_is_an_error_and_writes_nothing(small_vae, tmp_path):
    with pytest.raises(export.ExportParityError, match="int8"):
        _export(small_vae, tmp_path, weights="int8", weights_atol=1e-9)
    assert not (tmp_path / "export" / "m").exists()
    assert not (tmp_path / "saved_models" / "m" / "1").exists()


# Outputs: an export replaces only a bundle or a SavedModel version that tfvae wrote, and
# refuses anything else before it traces or converts a function (tfvae.outputs).


@pytest.fixture
def no_work(monkeypatch):
    """Records every tracing, SavedModel write and ONNX conversion instead of doing it."""
    calls = []

    def record(name):
        return lambda *args, **kwargs: calls.append(name)

    monkeypatch.setattr(export, "_decode_function", record("trace"))
    monkeypatch.setattr(export, "_write_saved_model", record("saved_model"))
    monkeypatch.setattr(tf2onnx.convert, "from_function", record("onnx"))
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("argument", ["out_dir", "saved_model_dir"])
@pytest.mark.parametrize("target", ["user folder", "file", "cwd"])
def test_export_refuses_what_it_did_not_write_before_any_work(
    small_vae, tmp_path, monkeypatch, no_work, argument, target
):
    if target == "user folder":
        path, reason = user_files(tmp_path / "mydir"), "2 entries tfvae did not write"
    elif target == "file":
        path, reason = tmp_path / "important.txt", "a file"
        path.write_text("precious")
    else:
        monkeypatch.chdir(user_files(tmp_path / "work"))
        path, reason = ".", "the current working directory"
    destinations = {"out_dir": tmp_path / "bundle", "saved_model_dir": tmp_path / "serving"}
    destinations[argument] = path
    before = tree_snapshot(tmp_path)
    with pytest.raises(outputs.OutputRefusedError, match=reason) as error:
        export.export_model(small_vae, **destinations)
    assert str(error.value).startswith(f"Expected {argument} to be")
    assert no_work == []
    assert tree_snapshot(tmp_path) == before


def test_check_destinations_resolves_the_defaults_and_refuses_overlaps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert export.check_destinations("digits", version=3) == (
        Path("export/digits"),
        Path("saved_models/digits"),
        Path("saved_models/digits/3"),
    )
    with pytest.raises(ValueError, match="overlaps saved_model_dir"):
        export.check_destinations("m", out_dir="serving", saved_model_dir="serving")
    with pytest.raises(ValueError, match="overlaps saved_model_dir"):
        export.check_destinations("m", out_dir="serving/1", saved_model_dir="serving")
    (tmp_path / "serving" / "2").mkdir(parents=True)
    (tmp_path / "serving" / "2" / "saved_model.pb").write_bytes(b"someone else's")
    with pytest.raises(ValueError, match="Expected saved_model_dir to .*did not write: 2"):
        export.check_destinations("m", saved_model_dir="serving", version=3)
    outputs.write_marker(tmp_path / "serving" / "2", outputs.SAVED_MODEL)
    (tmp_path / "serving" / "2" / "notes.txt").write_text("mine")
    export.check_destinations("m", saved_model_dir="serving", version=3)
    with pytest.raises(ValueError, match="saved_model_dir/VERSION.*did not write: notes.txt"):
        export.check_destinations("m", saved_model_dir="serving", version=2)


@pytest.mark.slow
def test_a_second_export_replaces_its_own_bundle_and_version(small_vae, retrained_vae, tmp_path):
    bundle = _export(small_vae, tmp_path)
    version = tmp_path / "saved_models" / "m" / "1"
    assert json.loads((bundle / "manifest.json").read_text())["format"] == "tfvae.bundle"
    marker = json.loads((version / "assets.extra" / "tfvae.json").read_text())
    assert marker == {"format": "tfvae.saved_model"}
    first_bundle, first_version = tree_snapshot(bundle), tree_snapshot(version)

    assert _export(retrained_vae, tmp_path) == bundle
    assert tree_snapshot(bundle) != first_bundle and tree_snapshot(version) != first_version
    z = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    expected = retrained_vae.decode(z).mean().numpy()
    loaded = tf.saved_model.load(str(version))
    np.testing.assert_allclose(loaded.signatures["decode"](z=z)["mean"], expected, atol=1e-5)
    np.testing.assert_allclose(Sampler.load(bundle).decode(z)["mean"], expected, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["m"]
    assert sorted(p.name for p in version.parent.iterdir()) == ["1"]

    # A user's file in the bundle makes it theirs: the next export refuses it.
    (bundle / "notes.txt").write_text("mine")
    before = tree_snapshot(tmp_path)
    with pytest.raises(ValueError, match="1 entry tfvae did not write: notes.txt"):
        _export(small_vae, tmp_path)
    assert tree_snapshot(tmp_path) == before


def test_an_unregistered_family_is_refused_before_any_work(tmp_path, monkeypatch):
    """A subclass of Bernoulli inherits its name; exported as "bernoulli" it would be
    sampled as plain Bernoulli. The export names the problem before tracing anything."""

    class SharperBernoulli(tfvae.likelihoods.Bernoulli):
        def _distribution(self, params):
            return super()._distribution({"logits": 2.0 * params["logits"]})

    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,)),
        tfvae.networks.mlp_decoder((8,)),
        latent_dim=2,
        likelihood=SharperBernoulli(),
        seed=0,
    )
    vae(_data("bernoulli", n=4))
    traced = []
    monkeypatch.setattr(export, "_decode_function", lambda *a: traced.append(a))
    with pytest.raises(ValueError, match=r"registered likelihood.*SharperBernoulli"):
        _export(vae, tmp_path)
    assert traced == [] and not (tmp_path / "export").exists()


# A hierarchy of latents: one decoder and one encoder per layer above z1.


@pytest.mark.slow
def test_a_two_layer_model_exports_one_network_per_layer_checked_against_numpy(tmp_path):
    model = TwoLayerLinearGaussian()
    vae = model.vae(upper_shift=np.array([0.3, -0.2]), stretch=1.2)
    x = model.data(64)
    bundle = export.export_model(
        vae,
        out_dir=tmp_path / "export",
        saved_model_dir=tmp_path / "saved_models",
        x_reference=x,
        atol=1e-5,
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    prior = manifest["prior"]
    assert prior["family"] == "hierarchical" and prior["upper_dim"] == 2
    assert prior["networks"] == {"decoder": "decoder_2", "encoder": "encoder_2"}
    assert prior["conditional"] == {"family": "diagonal_normal", "parameters": ["loc", "scale"]}
    assert prior["posterior"]["family"] == "full_covariance"
    assert prior["prior"] == {"family": "standard_normal", "parameters": {}}
    assert sorted(manifest["files"]) == [
        f"{kind}{depth}.onnx" for kind in ("decoder", "encoder") for depth in ("", "_2")
    ]
    assert manifest["saved_model"]["signatures"] == [
        "decode",
        "decode_2",
        "encode",
        "encode_2",
        "serving_default",
    ]
    errors = manifest["parity"]["max_abs_error"]
    assert all(max(by_format.values()) <= 1e-5 for by_format in errors.values())
    assert set(errors["onnx"]) == {"decoder", "decoder_2", "encoder", "encoder_2"}

    # The upper layer's networks against the model's closed forms, in numpy.
    def run(name, z):
        session = onnxruntime.InferenceSession(str(bundle / f"{name}.onnx"))
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(None, {"z": z.astype(np.float32)}), strict=True))

    rng = np.random.default_rng(0)
    z2, z1 = rng.normal(size=(32, 2)), rng.normal(size=(32, 3))
    decoded = run("decoder_2", z2)  # p(z1|z2) = N(V z2 + c, tau^2 I)
    np.testing.assert_allclose(decoded["loc"], z2 @ model.V.T + model.c, atol=1e-5)
    np.testing.assert_allclose(decoded["scale"], np.full((32, 3), 0.6), atol=1e-5)
    encoded = run("encoder_2", z1)  # q(z2|z1) = N(A2 (z1 - c) + shift, 1.2^2 S2)
    expected_loc = (z1 - model.c) @ model.A2.T + [0.3, -0.2]
    np.testing.assert_allclose(encoded["loc"], expected_loc, atol=1e-5)
    expected_tril = np.linalg.cholesky(1.2**2 * model.S2)
    np.testing.assert_allclose(
        encoded["scale_tril"], np.broadcast_to(expected_tril, (32, 2, 2)), atol=1e-5
    )
    # The SavedModel serves the same networks under their signatures.
    loaded = tf.saved_model.load(str(tmp_path / "saved_models" / "1"))
    served = loaded.signatures["decode_2"](z=tf.constant(z2, tf.float32))
    np.testing.assert_allclose(served["loc"].numpy(), decoded["loc"], atol=1e-5)


@pytest.mark.slow
def test_a_decoder_only_hierarchy_samples_but_cannot_score(tmp_path):
    vae = trained_vae(prior=tfvae.priors.hierarchy((2,), seed=0))
    bundle = _export(vae, tmp_path, components=("decoder",))
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["prior"]["networks"] == {"decoder": "decoder_2"}
    assert sorted(manifest["onnx"]) == ["decoder", "decoder_2"]
    sampler = Sampler.load(bundle)
    assert sampler.latent_dims == (3, 2)
    assert sampler.sample(5, seed=0).shape == (5, 8, 8, 1)
    with pytest.raises(ValueError, match="no encoder"):
        sampler.log_likelihood(_data("bernoulli", n=2))
