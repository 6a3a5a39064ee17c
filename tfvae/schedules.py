"""KL-weight schedules: beta as a function of the optimizer's step.

A VAE's KL weight is state that may change while it trains (`tfvae.VAE.beta`): a number,
or a schedule of `optimizer.iterations` that the compiled train step evaluates every
step, so it works under XLA and a distribution strategy and resumes with the optimizer.

Schedules (`beta=` name, instance or serialized config):
    - `"linear_warmup"`: KL annealing from `start` to `end` over `steps` steps, then
      constant (Bowman et al. 2016; Sonderby et al. 2016).
    - `"cyclical"`: the warm-up repeated every `period` steps (Fu et al. 2019).

Example:
    >>> vae = tfvae.VAE(encoder, decoder, latent_dim=50,
    ...                 beta=tfvae.schedules.LinearWarmup(steps=6000))
    >>> vae.beta = 0.5  # later: a constant again, from the next step on
"""

import tfvae._backend  # noqa: F401

import tensorflow as tf

from tfvae import validation
from tfvae.registry import Family, Registry


class BetaSchedule(Family):
    """Base class: `schedule(step)` is the KL weight at optimizer step `step` (from 0)."""

    def __call__(self, step) -> tf.Tensor:
        """The weight at `step`, a float32 scalar tensor; `step` is an integer tensor."""
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.get_config().items()))))


registry = Registry("beta schedule", BetaSchedule)


def _ramp(position, length: float) -> tf.Tensor:
    """min(position / length, 1) as float32, for a step `position` >= 0."""
    return tf.minimum(tf.cast(position, tf.float32) / length, 1.0)


@registry.register("linear_warmup")
class LinearWarmup(BetaSchedule):
    """Linear KL warm-up.

    Mathematical details: beta(t) = start + (end - start) * min(t / steps, 1) at optimizer
    step t = 0, 1, ...; the first step trains with beta = start.

    Args:
        steps: optimizer steps of the warm-up, a positive integer.
        start: the weight at step 0 (>= 0).
        end: the weight from step `steps` on (>= 0).
    """

    def __init__(self, steps: int = 10_000, start: float = 0.0, end: float = 1.0):
        self.steps = validation.positive_int(steps, "steps")
        self.start = validation.non_negative_float(start, "start")
        self.end = validation.non_negative_float(end, "end")

    def __call__(self, step):
        return self.start + (self.end - self.start) * _ramp(step, self.steps)

    def get_config(self):
        return {"steps": self.steps, "start": self.start, "end": self.end}


@registry.register("cyclical")
class Cyclical(BetaSchedule):
    """Cyclical KL annealing (Fu et al. 2019): a linear ramp repeated every `period` steps.

    Mathematical details: with tau = (t mod period) / period, beta(t) = end *
    min(tau / ramp_fraction, 1): within each cycle beta rises linearly from 0 to `end`
    over the first `ramp_fraction` of the cycle and stays at `end` for the rest. After
    `cycles` cycles (None: never) beta stays at `end`. Fu et al. use 4 cycles over the
    run and ramp_fraction 0.5.

    Args:
        period: optimizer steps per cycle, a positive integer.
        ramp_fraction: the part of each cycle spent rising, in (0, 1].
        cycles: the number of cycles, a positive integer, or None for no end.
        end: the weight at the top of each ramp (>= 0).
    """

    def __init__(
        self,
        period: int = 10_000,
        ramp_fraction: float = 0.5,
        cycles: int | None = None,
        end: float = 1.0,
    ):
        self.period = validation.positive_int(period, "period")
        self.ramp_fraction = validation.positive_float(ramp_fraction, "ramp_fraction")
        if self.ramp_fraction > 1.0:
            raise ValueError(
                f"Expected ramp_fraction in (0, 1]. Received: ramp_fraction={ramp_fraction!r}"
            )
        self.cycles = None if cycles is None else validation.positive_int(cycles, "cycles")
        self.end = validation.non_negative_float(end, "end")

    def __call__(self, step):
        step = tf.cast(step, tf.int64)
        weight = self.end * _ramp(step % self.period, self.ramp_fraction * self.period)
        if self.cycles is None:
            return weight
        return tf.where(step >= self.cycles * self.period, tf.constant(self.end), weight)

    def get_config(self):
        return {
            "period": self.period,
            "ramp_fraction": self.ramp_fraction,
            "cycles": self.cycles,
            "end": self.end,
        }


def get(identifier) -> BetaSchedule:
    """Resolves a schedule name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier, argument="beta")
