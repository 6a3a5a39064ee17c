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
