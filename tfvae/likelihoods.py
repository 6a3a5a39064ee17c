"""Likelihood families p(x|z): how decoder outputs become a distribution over data.

The decoder returns `num_params` raw values per data dimension, laid out as
`(..., *data_shape, num_params)`. A likelihood turns them into named, constrained
parameters (`parameters`) and those into a `tfd.Independent` over the data dimensions
(`distribution`). The parameter names are what the export path writes into its manifest
and what the ONNX runtime samples from.

Families (`likelihood=` name):
    - `"bernoulli"`: logits; x in [0, 1] (binary, or grey levels as the usual
      cross-entropy objective, which is then not a normalized density).
    - `"continuous_bernoulli"`: logits; the normalized density on [0, 1]
      (Loaiza-Ganem and Cunningham, 2019).
    - `"gaussian"`: loc, fixed `scale` (default 1): -log p is the squared error / 2
      plus a constant.
    - `"gaussian_learned_scale"`: loc and a per-dimension scale, softplus plus a floor.
    - `"binomial"`: logits, with a fixed `total_count` (16 for the 8x8 digits).
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import dtypes, validation
from tfvae.registry import Registry

tfd = tfp.distributions


class Likelihood:
    """Base class of the likelihood families.

    Subclasses set `param_names` and implement `_distribution(params)` (elementwise) and
    `support_bounds()`; `num_params = len(param_names)` is how many decoder outputs each
    data dimension needs.
    """

    family: str = ""  # the registered name, set by the registry
    param_names: tuple[str, ...] = ()

    @property
    def num_params(self) -> int:
        """Decoder outputs needed per data dimension."""
        return len(self.param_names)

    def parameters(self, raw: tf.Tensor) -> dict[str, tf.Tensor]:
        """Maps raw decoder outputs `(..., *data_shape, num_params)` to named parameters.

        Returns:
            A dict `name -> (..., *data_shape)` float32 tensor (float64 when the decoder
            computes in float64), one per `param_names`.
        """
        raw = dtypes.at_least_float32(raw)  # float32 under mixed precision, float64 kept
        return {name: self._constrain(name, raw[..., i]) for i, name in enumerate(self.param_names)}

    def _constrain(self, name: str, value: tf.Tensor) -> tf.Tensor:
        return value

    def distribution(self, params: dict, event_ndims: int) -> tfd.Distribution:
        """Builds p(x|z) from named parameters of shape `(..., *data_shape)`.

        Args:
            params: the dict returned by `parameters`.
            event_ndims: the number of data dimensions (3 for `(H, W, C)` images).

        Returns:
            A `tfd.Independent` whose event shape is the data shape.
        """
        return tfd.Independent(self._distribution(params), reinterpreted_batch_ndims=event_ndims)

    def _distribution(self, params: dict) -> tfd.Distribution:
        raise NotImplementedError

    def mean(self, params: dict) -> tf.Tensor:
        """E[x|z] elementwise, `(..., *data_shape)`, in ops that convert to ONNX."""
        return self._distribution(params).mean()

    def support_bounds(self) -> dict:
        """The support of one data value, as plain data: the one declaration of it.

        `in_support`, the `support` text, the export manifest and the ONNX runtime's
        input check all read it.

        Returns:
            `{"low": float or None, "high": float or None, "integer": bool}`: values are
            finite, `low <= x <= high` (None: unbounded on that side) and, when
            `integer`, whole numbers.
        """
        raise NotImplementedError

    @property
    def support(self) -> str:
        """The support in words, e.g. `"in [0, 1]"`, as in "needs x in [0, 1]"."""
        bounds = self.support_bounds()
        low, high = bounds["low"], bounds["high"]
        if low is not None and high is not None:
            where = f"in [{low:g}, {high:g}]"
        elif low is not None:
            where = f">= {low:g}"
        elif high is not None:
            where = f"<= {high:g}"
        else:
            where = ""
        if bounds["integer"]:
            return f"to be integers {where}".rstrip()
        if low is None or high is None:
            return f"finite and {where}" if where else "finite"
        return where

    def in_support(self, x) -> tf.Tensor:
        """Elementwise boolean: does each entry of float `x` lie in the support?"""
        bounds = self.support_bounds()
        inside = tf.math.is_finite(x)
        if bounds["low"] is not None:
            inside &= x >= bounds["low"]
        if bounds["high"] is not None:
            inside &= x <= bounds["high"]
        if bounds["integer"]:
            inside &= tf.equal(x, tf.round(x))
        return inside

    def check_support(self, x, argument: str = "x") -> None:
        """Raises a ValueError when any entry of `x` lies outside the support.

        Runs eagerly on numpy arrays or eager tensors (the public boundaries); the
        compiled training step does not re-check.
        """
        x = dtypes.at_least_float32(x)
        inside = self.in_support(x)
        if not bool(tf.reduce_all(inside)):
            values = x.numpy()
            numbers = values[~np.isnan(values)]
            observed = (
                f"the other values range over [{numbers.min():g}, {numbers.max():g}]"
                if numbers.size
                else "every value is NaN"
            )
            raise ValueError(
                f"The {self.family!r} likelihood needs {argument} {self.support}. Received "
                f"{values.size - int(np.count_nonzero(inside))} of {values.size} values "
                f"outside it ({np.count_nonzero(np.isnan(values))} NaN); {observed}. "
                f"{self._support_hint()}"
            )

    def _support_hint(self) -> str:
        return ""

    def constants(self) -> dict:
        """Fixed parameters of p(x|z) that the decoder does not output, e.g.
        `{"scale": 1.0}`; the export manifest records them for the runtime."""
        return {}

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


registry = Registry("likelihood", Likelihood)


_UNIT_INTERVAL = {"low": 0.0, "high": 1.0, "integer": False}
_FINITE = {"low": None, "high": None, "integer": False}
_UNIT_HINT = (
    "Hint: scale grey levels to [0, 1] (e.g. x / 255) or binarize them "
    "(tfvae.data.make_dataset(..., binarize='dynamic'))."
)


@registry.register("bernoulli")
class Bernoulli(Likelihood):
    """Bernoulli pixels parameterized by logits.

    Mathematical details: log p(x|z) = sum_i x_i log s(l_i) + (1 - x_i) log(1 - s(l_i)),
    with s the logistic sigmoid and l the logits. For x in {0, 1} this is a normalized
    likelihood; for grey levels in [0, 1] it is the cross-entropy objective (use
    `continuous_bernoulli` for a normalized density on [0, 1]).
    """

    param_names = ("logits",)

    def support_bounds(self):
        # [0, 1], not {0, 1}: grey levels are accepted (the cross-entropy objective).
        return dict(_UNIT_INTERVAL)

    def _distribution(self, params):
        return tfd.Bernoulli(logits=params["logits"], dtype=params["logits"].dtype)

    def _support_hint(self):
        return _UNIT_HINT


@registry.register("continuous_bernoulli")
class ContinuousBernoulli(Likelihood):
    """The continuous Bernoulli: the normalized Bernoulli-shaped density on [0, 1].

    Mathematical details: p(x|l) = C(s) s^x (1 - s)^(1 - x) with s = sigmoid(l) and
    C(s) = 2 artanh(1 - 2s) / (1 - 2s) (C = 2 at s = 1/2). Loaiza-Ganem and Cunningham,
    "The continuous Bernoulli", NeurIPS 2019.
    """

    param_names = ("logits",)

    def support_bounds(self):
        return dict(_UNIT_INTERVAL)

    def _distribution(self, params):
        return tfd.ContinuousBernoulli(logits=params["logits"])

    def mean(self, params):
        """E[x] = 1/2 + 1/(2 tanh(l/2)) - 1/l, and 1/2 + l/12 - l^3/720 for |l| < 0.1.

        TFP's mean uses `expm1`, which tf2onnx cannot convert; this form uses `tanh`.
        The series' error is below 1e-9 where it is used, and the closed form loses no
        more than about 1e-6 to cancellation at |l| = 0.1.
        """
        logits = params["logits"]
        small = tf.abs(logits) < 0.1
        safe = tf.where(small, tf.ones_like(logits), logits)
        closed_form = 0.5 + 0.5 / tf.math.tanh(0.5 * safe) - 1.0 / safe
        series = 0.5 + logits / 12.0 - logits**3 / 720.0
        return tf.where(small, series, closed_form)

    def _support_hint(self):
        return _UNIT_HINT


@registry.register("gaussian")
class Gaussian(Likelihood):
    """Gaussian with decoded mean and a fixed scale (the "MSE" view).

    Mathematical details: -log p(x|z) = ||x - loc||^2 / (2 scale^2)
    + D log(scale sqrt(2 pi)), with D the number of data dimensions.

    Args:
        scale: the fixed standard deviation, in data units (> 0).
    """

    param_names = ("loc",)

    def __init__(self, scale: float = 1.0):
        self.scale = validation.positive_float(scale, "scale")

    def support_bounds(self):
        return dict(_FINITE)

    def _distribution(self, params):
        return tfd.Normal(loc=params["loc"], scale=self.scale)

    def constants(self):
        return {"scale": self.scale}

    def get_config(self):
        return {"scale": self.scale}


@registry.register("gaussian_learned_scale")
class GaussianLearnedScale(Likelihood):
    """Gaussian with decoded per-dimension mean and scale.

    Mathematical details: scale = softplus(raw_scale) + min_scale, so the scale stays
    positive and the density bounded (an unbounded Gaussian likelihood makes the ELBO
    diverge on data with constant pixels).

    Args:
        min_scale: the scale floor, in data units (> 0).
    """

    param_names = ("loc", "scale")

    def __init__(self, min_scale: float = 1e-3):
        self.min_scale = validation.positive_float(min_scale, "min_scale")

    def support_bounds(self):
        return dict(_FINITE)

    def _constrain(self, name, value):
        if name == "scale":
            return tf.math.softplus(value) + self.min_scale
        return value

    def _distribution(self, params):
        return tfd.Normal(loc=params["loc"], scale=params["scale"])

    def get_config(self):
        return {"min_scale": self.min_scale}


@registry.register("binomial")
class Binomial(Likelihood):
    """Binomial counts out of a fixed `total_count`, parameterized by logits.

    Mathematical details: log p(x|z) = sum_i log C(n, x_i) + x_i log s(l_i)
    + (n - x_i) log(1 - s(l_i)), with n = total_count. The 8x8 digits (grey levels
    0..16) are binomial with n = 16.

    Args:
        total_count: the number of trials n, a positive integer.
    """

    param_names = ("logits",)

    def __init__(self, total_count: int = 16):
        self.total_count = validation.positive_int(total_count, "total_count")

    def support_bounds(self):
        return {"low": 0.0, "high": float(self.total_count), "integer": True}

    def _distribution(self, params):
        return tfd.Binomial(total_count=float(self.total_count), logits=params["logits"])

    def _support_hint(self):
        return "Hint: pass counts unscaled, or set total_count to the largest count."

    def constants(self):
        return {"total_count": self.total_count}

    def get_config(self):
        return {"total_count": self.total_count}


def get(identifier) -> Likelihood:
    """Resolves a likelihood name, instance or serialized config (see `Registry.get`)."""
    return registry.get(identifier, argument="likelihood")
