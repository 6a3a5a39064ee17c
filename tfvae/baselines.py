"""Baselines of the score-function gradient estimator: Keras layers the model owns.

A baseline b(x) is subtracted from the score-function estimator's learning signal
(`tfvae.estimators.ScoreFunction`); any b that does not depend on the step's latents
keeps the estimator unbiased, and one close to the signal lowers its variance. The
baselines are layers so that their state (a moving average, a learned network) trains
with the model, is averaged across replicas and saves with it.

Example:
    >>> baseline = MovingAverageBaseline(decay=0.9)
    >>> baseline.update(tf.constant([2.0, 4.0]))
    >>> float(baseline.running_average())  # bias-corrected: the one batch's mean
    3.0
"""

import tfvae._backend  # noqa: F401

import keras
import tensorflow as tf


class Baseline(keras.layers.Layer):
    """Base class of the score-function baselines: `call(x)` gives b(x), `(batch_size,)`.

    The running average c of the learning signal is a non-trainable variable, averaged
    across replicas under a distribution strategy; `update` moves it after each step.

    Args:
        decay: the moving average's decay per step, in [0, 1).
    """

    def __init__(self, decay: float, **kwargs):
        super().__init__(**kwargs)
        self.decay = decay
        self.average = self.add_weight(
            shape=(), initializer="zeros", trainable=False, aggregation="mean", name="average"
        )
        self.steps = self.add_weight(
            shape=(), initializer="zeros", trainable=False, aggregation="mean", name="steps"
        )

    def running_average(self) -> tf.Tensor:
        """c: the bias-corrected moving average of the signal, 0 before any update."""
        correction = 1.0 - tf.pow(tf.constant(self.decay, self.average.dtype), self.steps)
        return tf.math.divide_no_nan(tf.convert_to_tensor(self.average), correction)

    def update(self, learning_signal: tf.Tensor, sample_weight=None) -> None:
        """Moves the average toward the batch mean of `learning_signal` `(batch_size,)`,
        weighted by `sample_weight` `(batch_size,)` when given (as Keras weighs the loss
        metric: sum(w * signal) / sum(w), 0 for a batch of zero weights)."""
        signal = tf.cast(learning_signal, self.average.dtype)
        if sample_weight is None:
            batch_mean = tf.reduce_mean(signal)
        else:
            weights = tf.cast(tf.reshape(sample_weight, [-1]), signal.dtype)
            batch_mean = tf.math.divide_no_nan(
                tf.reduce_sum(weights * signal), tf.reduce_sum(weights)
            )
        self.average.assign(self.decay * self.average + (1.0 - self.decay) * batch_mean)
        self.steps.assign_add(1.0)

    def get_config(self):
        return {**super().get_config(), "decay": self.decay}


@keras.saving.register_keras_serializable(package="tfvae")
class MovingAverageBaseline(Baseline):
    """b(x) = c, the same for every input."""

    def call(self, x):
        return tf.fill(tf.shape(x)[:1], self.running_average())


@keras.saving.register_keras_serializable(package="tfvae")
class LearnedBaseline(Baseline):
    """b(x) = c + MLP(x): NVIL's input-dependent baseline on top of the moving average.

    The MLP reads x only, also in a conditional model.

    Args:
        decay: the moving average's decay per step.
        hidden_units: width of the MLP's one tanh layer.
        seed: seed of the hidden layer's initial weights.
    """

    def __init__(self, decay: float, hidden_units: int = 100, seed=None, **kwargs):
        super().__init__(decay, **kwargs)
        self.hidden_units = hidden_units
        self.seed = seed
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(
            hidden_units,
            activation="tanh",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        )
        self.output_layer = keras.layers.Dense(1, kernel_initializer="zeros")

    def build(self, input_shape):
        flat = (input_shape[0], int(tf.TensorShape(input_shape[1:]).num_elements()))
        self.hidden.build(flat)
        self.output_layer.build((input_shape[0], self.hidden_units))

    def call(self, x):
        hidden = self.hidden(self.flatten(tf.cast(x, self.compute_dtype)))  # [B, H]
        return self.running_average() + tf.cast(self.output_layer(hidden)[:, 0], self.average.dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "seed": self.seed}
