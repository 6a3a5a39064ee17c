"""`gradient_variance` against numpy, and what it measures on the digits.

On the digits (scaled to [0, 1], continuous Bernoulli likelihood, MLP 64, 4 latents,
Adam 3e-3, 10 epochs of batches of 100, seeds fixed, no XLA), the module's models give the
figures that the tests assert with margins and that `benchmarks/gradient_estimators.py`
records at a larger scale.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import data, diagnostics, estimators

EPOCHS = 10


def _tiny_vae(**kwargs):
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,), seed=1),
        tfvae.networks.mlp_decoder((8,), seed=2),
        latent_dim=2,
        seed=0,
        **kwargs,
    )
    vae.build((None, 8, 8, 1))
    vae.compile(jit_compile=False)
    return vae


def test_statistics_are_the_numpy_mean_and_variance_of_the_draws():
    """Draw i is the gradient of the batch-mean surrogate at seed (seed, i): recompute the
    draws here and summarize them with numpy."""
    vae = _tiny_vae(gradient_estimator=estimators.ScoreFunction(baseline="none"))
    x = (np.random.default_rng(0).random((10, 8, 8, 1)) < 0.3).astype("float32")
    measured = diagnostics.gradient_variance(
        vae, x, estimators=["reparameterization"], num_draws=6, seed=3
    )["reparameterization"]
    draws = []
    for index in range(6):
        with tf.GradientTape() as tape:
            _, surrogate = vae.surrogate(
                x, tfvae.random.as_seed((3, index)), estimator="reparameterization"
            )
            loss = tf.reduce_mean(surrogate.loss)
        gradients = tape.gradient(loss, vae.trainable_variables)
        variables = vae.trainable_variables
        draws.append({v.path: g.numpy() for v, g in zip(variables, gradients, strict=True)})
    assert measured.num_draws == 6
    for group in ("encoder", "decoder"):
        statistics = getattr(measured, group)
        paths = [v.path for v in getattr(vae, group).trainable_variables]
        assert sorted(statistics.mean) == sorted(paths)
        stacked = {path: np.stack([d[path] for d in draws]) for path in paths}
        for path in paths:
            np.testing.assert_allclose(statistics.mean[path], stacked[path].mean(0), rtol=1e-5)
        variances = {path: stacked[path].var(0, ddof=1).sum() for path in paths}
        assert statistics.variance == pytest.approx(sum(variances.values()), rel=1e-5)
        layers = {path.rsplit("/", 1)[0] for path in paths}
        assert set(statistics.layer_variance) == layers
        for layer in layers:
            expected = sum(v for p, v in variances.items() if p.rsplit("/", 1)[0] == layer)
            assert statistics.layer_variance[layer] == pytest.approx(expected, rel=1e-5)
        norm = np.sqrt(sum(np.sum(stacked[p].mean(0) ** 2) for p in paths))
        assert statistics.snr == pytest.approx(norm / np.sqrt(statistics.variance), rel=1e-5)


def test_the_models_own_estimator_keeps_its_baseline_unchanged():
    vae = _tiny_vae(gradient_estimator="score_function")
    vae.gradient_baseline.update(tf.constant([7.0]))
    x = (np.random.default_rng(0).random((10, 8, 8, 1)) < 0.3).astype("float32")
    diagnostics.gradient_variance(vae, x, estimators=["score_function"], num_draws=3)
    assert float(vae.gradient_baseline.steps.numpy()) == 1.0
    assert float(vae.gradient_baseline.running_average()) == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_draws": 1}, "num_draws >= 2"),
        ({"estimators": ["dreg"]}, "objective='iwae'"),
        ({"estimators": ["nope"]}, "Unknown gradient_estimator 'nope'"),
        ({"num_samples": 0}, "num_samples"),
    ],
)
def test_bad_arguments_are_named(arguments, message):
    vae = _tiny_vae()
    x = np.zeros((4, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match=message):
        diagnostics.gradient_variance(vae, x, **{"num_draws": 2, **arguments})


# ------------------------------------------------------------------------- the digits


@pytest.fixture(scope="module")
def digits():
    x_train, _ = data.load("digits", split="train")
    x_test, _ = data.load("digits", split="test")
    return (x_train / 16.0).astype("float32"), (x_test / 16.0).astype("float32")


def _digits_vae(**kwargs):
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((64,), seed=1),
        tfvae.networks.mlp_decoder((64,), seed=2),
        latent_dim=4,
        likelihood="continuous_bernoulli",
        seed=0,
        **kwargs,
    )
    vae.compile(keras.optimizers.Adam(3e-3), jit_compile=False)  # XLA's compiles cost more
    return vae


def _trained(digits, **kwargs):
    """(model, test ELBO before training, after EPOCHS epochs), nats per image."""
    x_train, x_test = digits
    vae = _digits_vae(**kwargs)
    before = vae.evaluate(x_test, batch_size=100, verbose=0, return_dict=True)["elbo"]
    vae.fit(x_train, batch_size=100, epochs=EPOCHS, verbose=0)
    after = vae.evaluate(x_test, batch_size=100, verbose=0, return_dict=True)["elbo"]
    return vae, before, after


@pytest.fixture(scope="module")
def pathwise(digits):
    return _trained(digits)


@pytest.mark.slow
def test_on_the_digits_the_score_function_variance_is_ten_times_the_pathwise_one_or_more(
    digits, pathwise
):
    """Encoder-gradient variance on 100 training digits, 50 draws (measured: 1627.0 for
    the score function with its moving-average baseline against 5.63, a factor of 289)."""
    vae, _, _ = pathwise
    measured = diagnostics.gradient_variance(vae, digits[0][:100], num_draws=50)
    ratio = (
        measured["score_function"].encoder.variance
        / measured["reparameterization"].encoder.variance
    )
    assert ratio >= 10
    # The decoder's gradient is the same estimator under both (z is only held constant).
    assert measured["score_function"].decoder.variance == pytest.approx(
        measured["reparameterization"].decoder.variance, rel=1e-4
    )


@pytest.mark.slow
def test_training_with_the_score_function_raises_the_elbo_and_ends_below_the_pathwise_run(
    digits, pathwise
):
    """Same networks, seeds and steps: the score function raises the test ELBO by 50 nats
    or more (measured: from -2.06 to 81.40) and ends below reparameterization (measured:
    88.68)."""
    _, before, after = _trained(digits, gradient_estimator="score_function")
    _, pathwise_before, pathwise_after = pathwise
    assert before == pytest.approx(pathwise_before)  # the same initial model
    assert after - before >= 50
    assert after < pathwise_after


@pytest.mark.slow
def test_dregs_encoder_snr_falls_far_less_with_k_than_the_iwae_gradients(digits):
    """A model trained on the IWAE bound with k = 5, measured at k = 1, 5, 50 (30 draws).
    The plain gradient's encoder SNR falls by more than half (measured: 2.00, 0.71, 0.48,
    4.2 times lower at k = 50); DReG's falls much less (measured: 3.61, 2.38, 2.00, 1.8
    times lower: it does fall after 10 epochs, while the theory's sqrt(k) growth is
    asymptotic; after 30 it is flat, benchmarks/README.md), so its lead over the plain
    one's grows with k, more than doubling from k = 1 to 50 (measured: 1.8, 3.4, 4.2)."""
    vae, _, _ = _trained(digits, objective="iwae", num_samples=5)
    snr = {"reparameterization": [], "dreg": []}
    for k in (1, 5, 50):
        measured = diagnostics.gradient_variance(
            vae, digits[0][:100], estimators=list(snr), num_draws=30, num_samples=k
        )
        for name in snr:
            snr[name].append(measured[name].encoder.snr)
    plain, dreg = np.array(snr["reparameterization"]), np.array(snr["dreg"])
    assert plain[-1] < 0.5 * plain[0]
    lead = dreg / plain
    assert np.all(np.diff(lead) > 0)
    assert lead[-1] > 2 * lead[0]
