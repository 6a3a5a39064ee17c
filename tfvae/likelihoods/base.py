"""The base class of the likelihood families p(x|z), and their registry.

A family is one class in one file of this package. It owns everything known about it:

    - its name (the registry's) and `param_names`;
    - its support (`support_bounds`), hence its display range and input checks;
    - `constants()`, the fixed parameters the export's manifest records;
    - `numpy_sample` and `numpy_log_prob`, which the ONNX runtime calls;
    - how a dataset's recipe becomes its input (`adapt_recipe`);
    - its TensorFlow side: `parameters` (constraints) and `_distribution` (a TFP
      distribution), which the Keras model calls.

The module imports numpy only; TensorFlow is imported on first use of a TensorFlow
method (`tfvae._lazy`), so `tfvae.runtime` reads the same classes without TensorFlow.
"""

import numpy as np

from tfvae import dtypes, support
from tfvae._lazy import tf, tfd
from tfvae.registry import Family, Registry


class Likelihood(Family):
    """Base class of the likelihood families.

    The decoder returns `num_params` raw values per data dimension, laid out as
    `(..., *data_shape, num_params)`. Subclasses set `param_names` and implement
    `support_bounds()`, `_distribution(params)` (elementwise), `numpy_sample` and
    `numpy_log_prob`; those with a constrained parameter override `_constrain`.
    """

    param_names: tuple[str, ...] = ()

    @property
    def num_params(self) -> int:
        """Decoder outputs needed per data dimension."""
        return len(self.param_names)

    # ------------------------------------------------------------------ plain data

    def support_bounds(self) -> dict:
        """The support of one data value: `{"low", "high", "integer"}` (`tfvae.support`)."""
        raise NotImplementedError

    @property
    def support(self) -> str:
        """The support in words, e.g. `"reals in [0, 1]"`."""
        return support.describe(self.support_bounds())

    def display_range(self) -> tuple[float, float] | None:
        """The data values shown as black and white: the support's bounds, if finite."""
        return support.display_range(self.support_bounds())

    def constants(self) -> dict:
        """The constructor arguments the runtime needs, e.g. `{"scale": 1.0}`: fixed
        parameters of p(x|z) that the decoder does not output. The manifest records
        them, and `tfvae.runtime` rebuilds the family with `cls(**constants)`."""
        return {}

    @classmethod
    def adapt_recipe(cls, recipe) -> dict:
        """How a dataset modelled by `recipe` becomes this family's input.

        Args:
            recipe: a `tfvae.workflow.Recipe`; its `full_scale` (the raw value shown as
                white, None for real-valued data), `scale` and `binarize` are read.

        Returns:
            The recipe fields to change: some of `scale`, `binarize`, `data_range` and
            `likelihood_config` (this family's constructor arguments).

        Raises:
            ValueError: when the data cannot be this family's input.

        The default suits continuous families: intensities are scaled to [0, 1], real
        values are used as they are.
        """
        if recipe.full_scale is None:
            return {"binarize": None, "likelihood_config": {}}
        unit = {"scale": recipe.full_scale, "data_range": (0.0, 1.0)}
        return {**unit, "binarize": None, "likelihood_config": {}}

    @classmethod
    def _adapt_recipe_to_counts(cls, recipe, config) -> dict:
        """`adapt_recipe` of a family of whole numbers 0..n: binarized data have n = 1,
        raw counts n = their full scale; other data are refused.

        Args:
            recipe: as in `adapt_recipe`.
            config: maps n to the family's constructor arguments.
        """
        if recipe.binarize:
            largest = 1
        elif recipe.scale is None and recipe.full_scale is not None:
            largest = int(recipe.full_scale)
        else:
            raise ValueError(
                f"Expected counts or binarized data for likelihood={cls.family!r}; these "
                f"data are modelled as {recipe.likelihood!r} values. Received: "
                f"likelihood={cls.family!r}"
            )
        return {"likelihood_config": config(largest), "data_range": (0.0, float(largest))}

    def numpy_sample(self, params: dict, rng: np.random.Generator) -> np.ndarray:
        """Draws x ~ p(x|params) in numpy: float32, shaped like the data.

        Args:
            params: the named parameters the exported decoder outputs, each
                `(n, *data_shape)` (a categorical's logits have one more axis).
            rng: a numpy random generator.
        """
        raise NotImplementedError

    def numpy_log_prob(self, x: np.ndarray, params: dict) -> np.ndarray:
        """log p(x|params) of each data value in numpy: float64, shaped like `x`."""
        raise NotImplementedError

    def check_support(self, x, argument: str = "x") -> None:
        """Raises a ValueError naming `argument` unless every entry of `x` (an array or
        an eager tensor: the public boundaries) lies in the support; the compiled
        training step does not re-check."""
        support.check(
            np.asarray(x), self.support_bounds(), argument, self._name(), self._support_hint()
        )

    def _support_hint(self) -> str:
        return ""

    def _name(self) -> str:
        return self.family or type(self).__name__

    # ------------------------------------------------------------------ TensorFlow

    def parameters(self, raw) -> dict:
        """Maps raw decoder outputs `(..., *data_shape, num_params)` to named parameters.

        Returns:
            A dict `name -> (..., *data_shape)` float32 tensor (float64 when the decoder
            computes in float64), one per `param_names`.
        """
        raw = dtypes.at_least_float32(raw)  # float32 under mixed precision, float64 kept
        return {name: self._constrain(name, raw[..., i]) for i, name in enumerate(self.param_names)}

    def _constrain(self, name: str, value):
        return value

    def distribution(self, params: dict, event_ndims: int):
        """Builds p(x|z), a `tfd.Independent` whose event shape is the data shape.

        Args:
            params: the dict returned by `parameters`.
            event_ndims: the number of data dimensions (3 for `(H, W, C)` images).
        """
        return tfd.Independent(self._distribution(params), reinterpreted_batch_ndims=event_ndims)

    def _distribution(self, params: dict):
        raise NotImplementedError

    def mean(self, params: dict):
        """E[x|z] elementwise, `(..., *data_shape)`, in ops that convert to ONNX."""
        return self._distribution(params).mean()

    def in_support(self, x):
        """Elementwise boolean tensor: does each entry of float `x` lie in the support?"""
        bounds = self.support_bounds()
        inside = tf.math.is_finite(x)
        if bounds["low"] is not None:
            inside &= x >= bounds["low"]
        if bounds["high"] is not None:
            inside &= x <= bounds["high"]
        if bounds["integer"]:
            inside &= tf.equal(x, tf.round(x))
        return inside


registry = Registry("likelihood", Likelihood)

UNIT_INTERVAL = {"low": 0.0, "high": 1.0, "integer": False}
FINITE = {"low": None, "high": None, "integer": False}
UNIT_HINT = (
    "Hint: scale grey levels to [0, 1] (e.g. x / 255) or binarize them "
    "(tfvae.data.make_dataset(..., binarize='dynamic'))."
)
