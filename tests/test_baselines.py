"""The score-function baselines: the moving average against numpy, and saved state."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import baselines


def test_the_moving_average_is_the_bias_corrected_decayed_mean():
    """After signals s_1..s_n (batch means m_i): c = sum_i (1 - d) d^(n - i) m_i / (1 - d^n),
    computed here in numpy; 0 before the first update."""
    decay = 0.7
    baseline = baselines.MovingAverageBaseline(decay)
    baseline.build((None, 3))
    assert float(baseline.running_average()) == 0.0
    rng = np.random.default_rng(0)
    means = []
    for _ in range(6):
        signal = rng.normal(5.0, 2.0, size=8)
        baseline.update(tf.constant(signal, tf.float32))
        means.append(signal.mean())
        n = len(means)
        weights = (1 - decay) * decay ** np.arange(n - 1, -1, -1)
        expected = weights @ np.array(means) / (1 - decay**n)
        assert float(baseline.running_average()) == pytest.approx(expected, rel=1e-6)
    values = baseline(tf.zeros((4, 3)))
    np.testing.assert_allclose(values, np.full(4, float(baseline.running_average())))


def test_sample_weights_weigh_the_batch_mean():
    """A padded example (weight 0) does not move the average: sum(w s) / sum(w)."""
    baseline = baselines.MovingAverageBaseline(0.5)
    baseline.build((None, 3))
    baseline.update(tf.constant([2.0, 4.0, 1000.0]), tf.constant([1.0, 3.0, 0.0]))
    assert float(baseline.running_average()) == pytest.approx((2.0 + 12.0) / 4.0)


def test_a_new_learned_baseline_is_its_moving_average_and_trains_its_own_network():
    baseline = baselines.LearnedBaseline(0.9, hidden_units=5, seed=0)
    x = tf.constant(np.random.default_rng(1).random((4, 8, 8, 1)), tf.float32)
    baseline.build(x.shape)
    baseline.update(tf.constant([2.0, 4.0]))
    np.testing.assert_allclose(baseline(x), np.full(4, 3.0), rtol=1e-6)
    assert {tuple(v.shape) for v in baseline.trainable_variables} == {(64, 5), (5,), (5, 1), (1,)}
    assert len(baseline.non_trainable_variables) == 2  # the average and its step count


def test_the_learned_baseline_is_the_average_plus_a_tanh_network():
    """b(x) = c + w2 . tanh(W1 flat(x) + b1) + b2, in numpy, with non-zero output weights."""
    baseline = baselines.LearnedBaseline(0.9, hidden_units=3, seed=0)
    x = np.random.default_rng(2).random((5, 2, 2)).astype("float32")
    baseline.build(x.shape)
    baseline.update(tf.constant([1.5]))
    w2 = np.array([[0.5], [-1.0], [2.0]], "float32")
    baseline.output_layer.kernel.assign(w2)
    baseline.output_layer.bias.assign(np.array([0.25], "float32"))
    kernel, bias = baseline.hidden.kernel.numpy(), baseline.hidden.bias.numpy()
    expected = 1.5 + np.tanh(x.reshape(5, 4) @ kernel + bias) @ w2[:, 0] + 0.25
    np.testing.assert_allclose(baseline(tf.constant(x)), expected, rtol=1e-5)


def test_the_learned_baselines_seed_fixes_its_initial_weights():
    """Through the model too: the VAE's seed seeds its NVIL baseline."""
    kernels = []
    for seed in (3, 3, 4):
        vae = tfvae.VAE(
            tfvae.networks.mlp_encoder((4,)),
            tfvae.networks.mlp_decoder((4,)),
            latent_dim=2,
            seed=seed,
            gradient_estimator=tfvae.estimators.ScoreFunction(baseline="nvil", hidden_units=4),
        )
        vae.build((None, 8, 8, 1))
        kernels.append(vae.gradient_baseline.hidden.kernel.numpy())
    np.testing.assert_array_equal(kernels[0], kernels[1])
    assert not np.allclose(kernels[0], kernels[2])


def test_the_baselines_are_saved_under_their_registered_names():
    """.keras files name the classes so; renaming would orphan saved models."""
    for cls in (baselines.MovingAverageBaseline, baselines.LearnedBaseline):
        assert keras.saving.get_registered_name(cls) == f"tfvae>{cls.__name__}"


@pytest.mark.slow
def test_the_baseline_state_saves_and_loads_with_the_model(tmp_path):
    x = (np.random.default_rng(0).random((64, 8, 8, 1)) < 0.3).astype("float32")
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,), seed=1),
        tfvae.networks.mlp_decoder((8,), seed=2),
        latent_dim=2,
        seed=0,
        gradient_estimator=tfvae.estimators.ScoreFunction(baseline="nvil", hidden_units=4),
    )
    vae.compile(jit_compile=False)
    vae.fit(x, batch_size=32, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    vae.save(path)
    restored = keras.saving.load_model(path)
    assert restored.gradient_estimator.get_config() == vae.gradient_estimator.get_config()
    assert float(restored.gradient_baseline.steps.numpy()) == 2.0
    assert float(restored.gradient_baseline.running_average()) == pytest.approx(
        float(vae.gradient_baseline.running_average())
    )
    np.testing.assert_allclose(restored.gradient_baseline(x), vae.gradient_baseline(x))
