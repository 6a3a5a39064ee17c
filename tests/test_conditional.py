"""The conditional VAE: the condition steers samples, and survives saving and export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.linear_model import LogisticRegression

import tfvae
from tfvae import export
from tfvae.runtime import Sampler

CLASSES = 10


def _one_hot(labels):
    return np.eye(CLASSES, dtype="float32")[labels]


def _conditional_vae(seed=0, **kwargs):
    return tfvae.VAE(
        tfvae.networks.mlp_encoder((128,), seed=seed),
        tfvae.networks.mlp_decoder((128,), seed=seed + 1),
        latent_dim=4,
        likelihood=tfvae.likelihoods.Binomial(total_count=16),
        condition_shape=(CLASSES,),
        seed=seed,
        **kwargs,
    )


@pytest.fixture(scope="module")
def digits():
    x, y = tfvae.data.load("digits", split="train")
    x_test, y_test = tfvae.data.load("digits", split="test")
    return x.astype("float32"), y, x_test.astype("float32"), y_test


@pytest.fixture(scope="module")
def trained(digits):
    x, y, _, _ = digits
    vae = _conditional_vae()
    vae.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=True)
    vae.fit((x, _one_hot(y)), batch_size=100, epochs=60, verbose=0)
    return vae


@pytest.fixture(scope="module")
def classifier(digits):
    """Logistic regression on the real training digits; its test accuracy is reported."""
    x, y, x_test, y_test = digits
    model = LogisticRegression(max_iter=2000).fit(x.reshape(len(x), -1) / 16.0, y)
    accuracy = model.score(x_test.reshape(len(x_test), -1) / 16.0, y_test)
    assert accuracy > 0.9
    return model


def _accuracy(classifier, images, labels):
    return classifier.score(np.asarray(images).reshape(len(images), -1) / 16.0, labels)


@pytest.mark.slow
def test_conditioned_samples_are_recognized_as_their_class(trained, classifier):
    labels = np.repeat(np.arange(CLASSES), 30)
    draws = trained.sample(len(labels), seed=0, condition=_one_hot(labels)).numpy()
    means = trained.sample(len(labels), seed=0, condition=_one_hot(labels), mean=True).numpy()
    accuracy = {
        "draws": _accuracy(classifier, draws, labels),
        "means": _accuracy(classifier, means, labels),
    }
    print(f"classifier accuracy on conditioned samples (chance 0.1): {accuracy}")
    assert accuracy["draws"] > 0.6 and accuracy["means"] > 0.6


@pytest.mark.slow
def test_exported_conditional_decoder_matches_keras_in_onnxruntime(trained, classifier, tmp_path):
    bundle = export.export_model(
        trained, out_dir=tmp_path / "bundle", saved_model_dir=tmp_path / "serving", atol=1e-5
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["condition_shape"] == [CLASSES]
    assert manifest["onnx"]["decoder"]["inputs"] == ["z", "condition"]
    assert manifest["onnx"]["encoder"]["inputs"] == ["x", "condition"]
    sampler = Sampler.load(bundle)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 4)).astype("float32")
    condition = _one_hot(rng.integers(0, CLASSES, size=40))
    expected = trained.likelihood_parameters(z, condition)["logits"].numpy()
    np.testing.assert_allclose(sampler.decode(z, condition)["logits"], expected, atol=1e-5)
    # One condition broadcasts over all samples; the runtime's samples carry the class.
    labels = np.repeat(np.arange(CLASSES), 30)
    draws = np.concatenate(
        [sampler.sample(30, seed=k, condition=_one_hot(k)) for k in range(CLASSES)]
    )
    accuracy = _accuracy(classifier, draws, labels)
    print(f"classifier accuracy on onnxruntime samples: {accuracy:.3f}")
    assert accuracy > 0.6
    loaded = tf.saved_model.load(str(tmp_path / "serving" / "1"))
    served = loaded.signatures["decode"](z=tf.constant(z), condition=tf.constant(condition))
    np.testing.assert_allclose(served["logits"].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="model is conditional: pass condition="):
        sampler.decode(z)
    with pytest.raises(ValueError, match=r"condition of shape \(10,\) or \(n, \*\(10,\)\)"):
        sampler.decode(z, np.zeros((40, 3)))


@pytest.mark.slow
def test_all_ways_of_passing_the_condition_train_alike(digits):
    x, y, _, _ = digits
    x, condition = x[:200], _one_hot(y[:200])
    ways = {
        "fit(x, y)": lambda vae: vae.fit(x, condition, batch_size=100, shuffle=False, verbose=0),
        "fit((x, y))": lambda vae: vae.fit(
            (x, condition), batch_size=100, shuffle=False, verbose=0
        ),
        "dataset": lambda vae: vae.fit(
            tf.data.Dataset.from_tensor_slices((x, condition)).batch(100), verbose=0
        ),
    }
    weights = {}
    for name, fit in ways.items():
        vae = _conditional_vae()
        vae.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=False)  # 2 steps each
        fit(vae)
        weights[name] = vae.get_weights()
    for name in ways:
        for a, b in zip(weights[name], weights["fit(x, y)"], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_the_condition_changes_what_the_decoder_outputs(trained):
    z = np.zeros((2, 4), dtype="float32")
    zero, one = _one_hot([0, 0]), _one_hot([1, 1])
    difference = trained.decode(z, zero).mean() - trained.decode(z, one).mean()
    assert float(tf.reduce_max(tf.abs(difference))) > 1.0  # counts out of 16


@pytest.mark.slow
def test_save_load_round_trip(trained, tmp_path, digits):
    x, y, _, _ = digits
    trained.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.condition_shape == (CLASSES,)
    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        trained.get_config(), sort_keys=True
    )
    condition = _one_hot(y[:5])
    np.testing.assert_array_equal(
        loaded.predict((x[:5], condition), verbose=0),
        trained.predict((x[:5], condition), verbose=0),
    )


def test_condition_errors_say_what_is_expected(trained, digits):
    x, _, _, _ = digits
    with pytest.raises(ValueError, match=r"needs a condition of shape \(batch_size, \*\(10,\)\)"):
        trained.elbo_terms(x[:4])
    with pytest.raises(
        ValueError, match=r"Expected a condition of shape \(batch_size, \*\(10,\)\)"
    ):
        trained.elbo_terms(x[:4], condition=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="condition_shape to be a non-empty tuple"):
        _conditional_vae().__class__(
            tfvae.networks.mlp_encoder(), tfvae.networks.mlp_decoder(), 2, condition_shape=10
        )
    unconditional = tfvae.VAE(tfvae.networks.mlp_encoder((8,)), tfvae.networks.mlp_decoder((8,)), 2)
    with pytest.raises(ValueError, match="has no condition_shape; it takes no condition"):
        unconditional.elbo_terms(x[:2] / 16.0 > 0.5, condition=np.zeros((2, 10)))


@pytest.mark.slow
def test_log_likelihood_is_higher_under_the_true_label(trained, digits):
    """log p(x | y) with the digit's own label beats the same digit under other labels."""
    _, _, x_test, y_test = digits
    x, labels = x_test[:60], y_test[:60]
    true = trained.log_likelihood(x, 200, seed=0, condition=_one_hot(labels)).numpy()
    wrong = trained.log_likelihood(x, 200, seed=0, condition=_one_hot((labels + 1) % 10))
    assert np.mean(true > wrong.numpy()) > 0.9


def test_a_condition_of_the_wrong_shape_is_refused_not_reshaped(trained):
    z = np.zeros((2, 4), dtype="float32")
    with pytest.raises(ValueError, match=r"condition of shape \(batch_size, \*\(10,\)\)"):
        trained.decode(z, np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"with batch_size=2"):
        trained.decode(z, np.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"condition of shape"):
        trained.sample(6, condition=np.arange(6))  # labels instead of one-hot rows
    one = trained.sample(4, seed=1, condition=_one_hot(3)).numpy()
    each = trained.sample(4, seed=1, condition=_one_hot([3, 3, 3, 3])).numpy()
    np.testing.assert_array_equal(one, each)


def test_an_unbuilt_conditional_model_can_be_called_on_a_pair(digits):
    x, y, _, _ = digits
    vae = _conditional_vae()
    reconstruction = vae((x[:3], _one_hot(y[:3])))
    assert reconstruction.shape == (3, 8, 8, 1)
    with pytest.raises(ValueError, match=r"Expected inputs \(x, condition\)"):
        vae(x[:3])


@pytest.mark.slow
def test_inference_utilities_take_the_condition(trained, digits):
    _, _, x_test, y_test = digits
    x, condition = x_test[:20], _one_hot(y_test[:20])
    refined = trained.refine_posterior(x, steps=20, condition=condition, seed=0)
    assert np.all(refined["elbo_after"].numpy() >= refined["elbo_before"].numpy())
    mask = np.zeros_like(x, dtype=bool)
    mask[:, 4:] = True
    completed = trained.impute(x, mask, steps=10, condition=condition, seed=0).numpy()
    np.testing.assert_array_equal(completed[~mask], x[~mask])
    dataset = tf.data.Dataset.from_tensor_slices((x, condition)).batch(10)
    from_dataset = tfvae.evaluate(trained, dataset, num_samples=50, verbose=0)
    from_arrays = tfvae.evaluate(
        trained, x, num_samples=50, batch_size=10, condition=condition, verbose=0
    )
    for key in ("kl_per_dimension", "posterior_mean_variance", "active_dimensions"):
        np.testing.assert_allclose(from_dataset.pop(key), from_arrays.pop(key), rtol=1e-5)
    assert from_dataset == pytest.approx(from_arrays)
