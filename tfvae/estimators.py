"""Gradient estimators: how a training step differentiates its objective through z ~ q(z|x).

An objective (`tfvae.objectives`) is an expectation over latents drawn from q_phi(z|x), so
its gradient with respect to the encoder's parameters phi must be estimated. An estimator
turns the step's `LatentTerms` into a per-example *surrogate loss*: a tensor whose
gradient is the estimate (its value is not the objective; the model reports the
objective's own loss). It also says how the terms are computed: whether z is
differentiated through (`reparameterized`) and whether log q(z|x) sees the posterior's
parameters (`stops_posterior_in_log_q`).

Estimators (`gradient_estimator=` name):
    - `"reparameterization"`: z = loc + scale * eps is differentiated through (Kingma and
      Welling 2014; Rezende et al. 2014). The surrogate is the objective's loss itself.
      Low variance; needs a posterior whose sampler is differentiable (all of tfvae's).
    - `"score_function"`: z is held constant and grad_phi E_q[f(z)] = E_q[f(z) grad_phi
      log q(z|x)] (REINFORCE, Williams 1992; black-box VI, Ranganath et al. 2014). Works
      for any q, at a far higher variance, which a baseline b reduces: (f - b) replaces f,
      unbiased for any b that does not depend on z. `ScoreFunction(baseline=...)`: a
      moving average of f over steps (the default), and an input-dependent learned b(x)
      on top of it (`"nvil"`, Mnih and Gregor 2014). Needs an objective that is a mean
      over samples (`"elbo"`).
    - `"dreg"`: the doubly reparameterized gradient of the IWAE bound (Tucker, Lawson, Gu
      and Maddison 2019), whose encoder signal-to-noise ratio holds up as the number of
      samples k grows (it grows as sqrt(k) for large k), where the plain reparameterized
      IWAE gradient's falls (Rainforth et al. 2018). Needs `objective="iwae"`.

Example:
    >>> vae = tfvae.VAE(encoder, decoder, latent_dim=8, gradient_estimator="score_function")
    >>> vae = tfvae.VAE(encoder, decoder, latent_dim=8, objective="iwae", num_samples=5,
    ...                 gradient_estimator="dreg")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from tfvae import validation
from tfvae._lazy import tf
from tfvae.objectives import ELBO, IWAE, LatentTerms, Objective
from tfvae.registry import Family, Registry

if TYPE_CHECKING:
    from tfvae.baselines import Baseline


class Surrogate(NamedTuple):
    """Per-example losses whose gradients are an estimator's estimate.

    Attributes:
        loss: `(batch_size,)`; its gradient is the estimate for every trainable variable,
            except the encoder's when `encoder_loss` is set.
        encoder_loss: `(batch_size,)` whose gradient is the estimate for the encoder's
            variables, or None when `loss` serves them too.
        learning_signal: `(batch_size,)` the mean over samples of the per-sample losses a
            score-function estimator weighs the score by (nats), which a moving-average
            baseline tracks; None for the other estimators.
    """

    loss: tf.Tensor
    encoder_loss: tf.Tensor | None = None
    learning_signal: tf.Tensor | None = None


class GradientEstimator(Family):
    """Base class: maps `LatentTerms` to the `Surrogate` whose gradient is the estimate."""

    #: Whether z is differentiated through (False: the model stops its gradient).
    reparameterized: bool = True
    #: Whether log q(z|x) is computed with the posterior's parameters held constant, so
    #: that it reaches phi only through z.
    stops_posterior_in_log_q: bool = False
    #: Whether the surrogate has an `encoder_loss` of its own.
    separates_encoder_loss: bool = False

    def check(self, objective: Objective, kl: str) -> None:
        """Raises `ValueError` if the estimator cannot estimate `objective`'s gradient
        with the model's `kl` (`"analytic"` or `"mc"`); every one suits the base class."""
        return None  # a body AutoGraph can convert, unlike a lone docstring

    def make_baseline(self, seed: int | None = None) -> Baseline | None:
        """A new baseline layer for the model to own (and save), or None."""
        return None

    def surrogate(
        self, objective: Objective, terms: LatentTerms, beta, baseline: tf.Tensor | None = None
    ) -> Surrogate:
        """The surrogate of `objective.loss(terms, beta)`.

        Args:
            objective: the model's objective.
            terms: the step's terms, computed as `reparameterized` and
                `stops_posterior_in_log_q` say.
            beta: the KL weight, a float or scalar tensor.
            baseline: `(batch_size,)` the baseline layer's values b(x), or None.
        """
        raise NotImplementedError


registry = Registry("gradient_estimator", GradientEstimator)


@registry.register("reparameterization")
class Reparameterization(GradientEstimator):
    """The pathwise gradient through z = loc + scale * eps: the objective's loss itself."""

    def surrogate(self, objective, terms, beta, baseline=None):
        return Surrogate(objective.loss(terms, beta))


BASELINES = ("moving_average", "nvil", "none")


@registry.register("score_function")
class ScoreFunction(GradientEstimator):
    """The score-function (REINFORCE) estimator, with a baseline.

    Mathematical details: with z_l ~ q_phi(z|x) held constant and the objective's
    per-sample losses l_l (the negative per-sample ELBO integrand; with an analytic KL
    only -log p(x|z_l), the KL keeping its exact gradient), the surrogate is

        loss(z) + (1/L) sum_l stop_gradient(l_l - b(x)) log q_phi(z_l|x),

    whose expected gradient is grad_phi E_q[loss], since E_q[grad_phi log q] = 0 makes
    any b independent of z unbiased. The decoder's (and a learnable prior's) gradient is
    the ordinary one at the constant z. Baselines:

    - `"moving_average"`: b = c, an exponential moving average of the batch mean of l
      over earlier steps (decay `decay`, bias-corrected like Adam's moments; 0 before the
      first step).
    - `"nvil"`: b(x) = c + MLP(x), the MLP (one tanh layer of `hidden_units`, output
      initialized to 0) trained by the extra loss (1/L) sum_l (l_l - b(x))^2, which
      reaches only its weights (Mnih and Gregor 2014, without their variance scaling).
    - `"none"`: b = 0.

    Args:
        baseline: one of `"moving_average"`, `"nvil"`, `"none"`.
        decay: the moving average's decay per step, in [0, 1).
        hidden_units: width of the NVIL baseline's hidden layer.
    """

    reparameterized = False

    def __init__(self, baseline: str = "moving_average", decay: float = 0.9, hidden_units=100):
        self.baseline = validation.one_of(baseline, BASELINES, "baseline")
        decay = validation.non_negative_float(decay, "decay")
        if decay >= 1.0:
            raise ValueError(f"Expected decay in [0, 1). Received: decay={decay!r}")
        self.decay = decay
        self.hidden_units = validation.positive_int(hidden_units, "hidden_units")

    def check(self, objective, kl):
        if not isinstance(objective, ELBO):
            raise ValueError(
                "Expected objective='elbo' with gradient_estimator='score_function': its "
                "learning signal is per sample, and the "
                f"{objective.family!r} bound couples the samples (use 'dreg' or "
                f"'reparameterization' for 'iwae'). Received: objective={objective!r}"
            )
        if objective.free_bits > 0 and kl == "mc":
            raise ValueError(
                "Expected kl='analytic' with free bits and gradient_estimator="
                "'score_function': a Monte Carlo KL under free bits couples the batch's "
                f"samples. Received: kl={kl!r}, objective={objective!r}"
            )

    def make_baseline(self, seed=None):
        from tfvae import baselines

        if self.baseline == "none":
            return None
        if self.baseline == "nvil":
            return baselines.LearnedBaseline(self.decay, self.hidden_units, seed=seed)
        return baselines.MovingAverageBaseline(self.decay)

    def surrogate(self, objective, terms, beta, baseline=None):
        signal = tf.stop_gradient(objective.sample_losses(terms, beta))  # [L, B]
        if baseline is not None:
            baseline = tf.cast(baseline, signal.dtype)  # [B]
        centred = signal if baseline is None else signal - tf.stop_gradient(baseline)
        score = tf.reduce_mean(centred * terms.log_posterior, axis=0)  # [B]
        loss = objective.loss(terms, beta) + score
        if self.baseline == "nvil":
            loss += tf.reduce_mean(tf.square(signal - baseline), axis=0)
        return Surrogate(loss, learning_signal=tf.reduce_mean(signal, axis=0))

    def get_config(self):
        return {"baseline": self.baseline, "decay": self.decay, "hidden_units": self.hidden_units}


@registry.register("dreg")
class DReG(GradientEstimator):
    """The doubly reparameterized gradient of the IWAE bound (Tucker et al. 2019).

    Mathematical details: with log-weights log w_l = log p(x, z_l) - log q(z_l|x) over
    z_l = z(eps_l, phi) and normalized weights w~_l = w_l / sum_k w_k, the IWAE gradient
    for the decoder is sum_l w~_l grad_theta log w_l (the `iwae` loss's own), and for the
    encoder

        sum_l w~_l^2 (d log w_l / d z_l) (d z_l / d phi),

    with log q's parameters held constant, so phi is reached only through z. Its
    expectation is the IWAE gradient's, and the score-function part, whose noise grows
    with k, is gone.
    """

    stops_posterior_in_log_q = True
    separates_encoder_loss = True

    def check(self, objective, kl):
        if not isinstance(objective, IWAE):
            raise ValueError(
                "Expected objective='iwae' with gradient_estimator='dreg' (the doubly "
                f"reparameterized IWAE gradient). Received: objective={objective!r}"
            )

    def surrogate(self, objective, terms, beta, baseline=None):
        log_weights = terms.log_weights  # [L, B], log q with constant parameters
        squared = tf.stop_gradient(tf.square(tf.nn.softmax(log_weights, axis=0)))  # [L, B]
        encoder_loss = -tf.reduce_sum(squared * log_weights, axis=0)  # [B]
        return Surrogate(objective.loss(terms, beta), encoder_loss=encoder_loss)


def get(identifier) -> GradientEstimator:
    """Resolves an estimator name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier)


def suitable(objective: Objective, kl: str = "analytic") -> list[str]:
    """The registered estimators (with their default settings) that can estimate the
    gradient of `objective` under `kl`, sorted by name."""
    names = []
    for name in registry.names():
        try:
            registry.get(name).check(objective, kl)
        except ValueError:
            continue
        names.append(name)
    return names
