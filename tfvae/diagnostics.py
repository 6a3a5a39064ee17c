"""Diagnostics of training: the variance of the gradient estimators at a model's weights.

`gradient_variance` draws the gradient of the training step's loss (the mean over a batch
of the estimator's surrogate, `VAE.surrogate`) `num_draws` times with independent noise,
the weights held fixed, and summarizes the draws for the encoder's and the decoder's
variables: the mean gradient, its variance (the trace of the covariance of the flattened
gradient, in total and per layer) and its signal-to-noise ratio. It measures what the
theory compares: the reparameterization gradient against the score function's, and the
IWAE gradient's encoder SNR against DReG's as the number of samples grows.

Example:
    >>> stats = tfvae.diagnostics.gradient_variance(
    ...     vae, x[:100], estimators=("reparameterization", "score_function"), num_draws=100)
    >>> stats["score_function"].encoder.variance / stats["reparameterization"].encoder.variance
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from tfvae import random, validation
from tfvae._lazy import tf

if TYPE_CHECKING:
    from tfvae.model import VAE

GROUPS = ("encoder", "decoder")


@dataclasses.dataclass(frozen=True)
class GroupStatistics:
    """The draws of one group of variables' gradient (the encoder's or the decoder's).

    Attributes:
        mean: variable path -> the mean gradient, float64 of the variable's shape.
        variance: the trace of the gradient's covariance: the sum over the group's
            parameters of each one's variance across draws (unbiased, ddof 1).
        layer_variance: layer path (a variable's path less its last part, e.g.
            `mlp_encoder/dense`) -> the same sum over that layer's parameters.
        snr: ||mean||_2 / sqrt(variance): how far the mean gradient stands out of one
            draw's noise (inf when the variance is 0).
    """

    mean: dict[str, np.ndarray]
    variance: float
    layer_variance: dict[str, float]
    snr: float


@dataclasses.dataclass(frozen=True)
class EstimatorStatistics:
    """One estimator's gradient draws: its name, settings and per-group statistics."""

    estimator: str
    num_samples: int
    num_draws: int
    encoder: GroupStatistics
    decoder: GroupStatistics

    def as_dict(self) -> dict:
        """Plain numbers for JSON: the scalars of each group (not the mean arrays)."""
        summary = {"num_samples": self.num_samples, "num_draws": self.num_draws}
        for group in GROUPS:
            statistics = getattr(self, group)
            summary[group] = {
                "variance": statistics.variance,
                "snr": statistics.snr,
                "layer_variance": dict(statistics.layer_variance),
            }
        return summary


def gradient_variance(
    model: VAE,
    x,
    estimators=("reparameterization", "score_function"),
    num_draws: int = 100,
    num_samples: int | None = None,
    seed: int = 0,
    condition=None,
    baseline_warmup: int = 20,
) -> dict[str, EstimatorStatistics]:
    """The mean, variance and SNR of each estimator's gradient on the batch `x`.

    Draw i of every estimator uses the noise of stateless seed (seed, i), so the
    estimators are compared on common random numbers. A draw is the gradient of the mean
    over the batch of the surrogate, as in a training step on one replica (Keras's sample
    weights and loss scaling aside), with the model's current KL weight.

    Baselines: the model's own estimator is measured with the model's own baseline as
    trained, which is left unchanged. Any other estimator that needs one gets a new
    baseline whose moving average is first updated over `baseline_warmup` draws on `x`
    (not counted), as it would be by training at these weights; a new learned (NVIL)
    baseline's network outputs 0 until trained, so it is measured as its moving average.

    Args:
        model: a built VAE.
        x: `(batch_size, *data_shape)` data in the likelihood's support.
        estimators: names from `tfvae.estimators.registry` or instances; each must suit
            the model's objective (`GradientEstimator.check`).
        num_draws: gradient draws per estimator, an integer >= 2.
        num_samples: latent samples L per example (default: the model's).
        seed: integer seed of the draws' noise.
        condition: the condition y of a conditional model.
        baseline_warmup: draws that warm up a new baseline's moving average.

    Returns:
        estimator name (the name given, or the instance's repr) -> `EstimatorStatistics`.

    Raises:
        ValueError: for an unknown or unsuitable estimator, `num_draws` < 2, or a model
            that is not built.
    """
    from tfvae import estimators as estimators_lib

    model._require_built("measure gradients")
    num_draws = validation.positive_int(num_draws, "num_draws")
    if num_draws < 2:
        raise ValueError(f"Expected num_draws >= 2 for a variance. Received: {num_draws}")
    num_samples = validation.positive_int(
        model.num_samples if num_samples is None else num_samples, "num_samples"
    )
    seed = validation.seed(seed)
    baseline_warmup = validation.non_negative_int(baseline_warmup, "baseline_warmup")
    model.likelihood.check_support(x)
    x = tf.convert_to_tensor(x, tf.float32)
    results = {}
    for identifier in estimators:
        estimator = estimators_lib.get(identifier)
        estimator.check(model.objective, model.kl)
        name = identifier if isinstance(identifier, str) else repr(identifier)
        if estimator is model.gradient_estimator or (
            type(estimator) is type(model.gradient_estimator)
            and estimator.get_config() == model.gradient_estimator.get_config()
        ):
            baseline = model.gradient_baseline
            warmup = 0
        else:
            baseline = estimator.make_baseline(seed)
            warmup = 0 if baseline is None else baseline_warmup
            if baseline is not None:
                baseline.build((None, *model.data_shape))
        draw = _gradient_draw(model, estimator, baseline, num_samples, condition)
        for index in range(warmup):
            _, signal = draw(x, random.as_seed((seed, num_draws + index)))
            baseline.update(signal)
        draws = (draw(x, random.as_seed((seed, index)))[0] for index in range(num_draws))
        results[name] = _statistics(model, name, num_samples, draws)
    return results


def _gradient_draw(model, estimator, baseline, num_samples, condition):
    """A compiled function: (x, seed) -> (gradients of `trainable_variables`, the
    learning signal `(batch_size,)` or zeros)."""

    def draw(x, seed):
        with tf.GradientTape(persistent=estimator.separates_encoder_loss) as tape:
            _, surrogate = model.surrogate(
                x, seed, None, condition, estimator, baseline, num_samples
            )
            losses = [None if loss is None else tf.reduce_mean(loss) for loss in surrogate[:2]]
        gradients = model.surrogate_gradients(tape, *losses)
        signal = surrogate.learning_signal
        return gradients, tf.zeros([1]) if signal is None else signal

    return tf.function(draw, jit_compile=model._compiled_functions.jit_compile)


def _statistics(model, name, num_samples, draws) -> EstimatorStatistics:
    """Welford's running mean and sum of squared deviations over the draws, in float64."""
    variables = model.trainable_variables
    count, mean, squares = 0, None, None
    for gradients in draws:
        values = [np.asarray(g, dtype=np.float64) for g in gradients]
        count += 1
        if mean is None:
            mean = values
            squares = [np.zeros_like(v) for v in values]
            continue
        for i, value in enumerate(values):
            delta = value - mean[i]
            mean[i] = mean[i] + delta / count
            squares[i] = squares[i] + delta * (value - mean[i])
    by_path = {
        v.path: (m, s / (count - 1)) for v, m, s in zip(variables, mean, squares, strict=True)
    }
    groups = {}
    for group in GROUPS:
        paths = [v.path for v in getattr(model, group).trainable_variables]
        layer_variance = {}
        for path in paths:
            layer = path.rsplit("/", 1)[0]
            layer_variance[layer] = layer_variance.get(layer, 0.0) + float(by_path[path][1].sum())
        variance = float(sum(by_path[path][1].sum() for path in paths))
        norm = float(np.sqrt(sum(np.sum(by_path[path][0] ** 2) for path in paths)))
        groups[group] = GroupStatistics(
            mean={path: by_path[path][0] for path in paths},
            variance=variance,
            layer_variance=layer_variance,
            snr=norm / float(np.sqrt(variance)) if variance > 0 else float("inf"),
        )
    return EstimatorStatistics(name, num_samples, count, groups["encoder"], groups["decoder"])


def variance_by_samples(
    model: VAE,
    x,
    samples=(1, 2, 5, 10, 20, 50),
    estimators=None,
    num_draws: int = 100,
    seed: int = 0,
) -> dict[str, list[EstimatorStatistics]]:
    """`gradient_variance` at each number of latent samples L in `samples`.

    Args:
        model, x, num_draws, seed: as `gradient_variance`.
        samples: the numbers of samples L, positive integers.
        estimators: as `gradient_variance`; default every registered estimator that suits
            the model's objective (`tfvae.estimators.suitable`).

    Returns:
        estimator name -> one `EstimatorStatistics` per L, in the order of `samples`.
    """
    from tfvae import estimators as estimators_lib

    if estimators is None:
        estimators = estimators_lib.suitable(model.objective, model.kl)
    samples = [validation.positive_int(size, "samples") for size in samples]
    if not samples:
        raise ValueError("Expected at least one number of samples. Received: samples=()")
    by_estimator = {}
    for size in samples:
        measured = gradient_variance(model, x, estimators, num_draws, size, seed)
        for name, statistics in measured.items():
            by_estimator.setdefault(name, []).append(statistics)
    return by_estimator
