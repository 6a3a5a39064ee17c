"""Encoder and decoder networks that the model sizes to its probability families.

A network built here leaves its `target_shape` unset; `tfvae.VAE` sets it when it is built
(the encoder to `(param_size,)` of the posterior, the decoder to
`(*data_shape, num_params)` of the likelihood), so the same call works for every family:

    encoder = tfvae.networks.mlp_encoder(hidden=(500, 500))
    decoder = tfvae.networks.mlp_decoder(hidden=(500, 500))
    vae = tfvae.VAE(encoder, decoder, latent_dim=50, likelihood="bernoulli")

Any other Keras layer that returns tensors works too, as long as its output width matches
what the families need (the model checks and says the width it needs).
"""

import math
from collections.abc import Iterable

import tfvae._backend  # noqa: F401

import keras
import numpy as np
import tensorflow as tf

from tfvae import validation

# The output layer's initializer seed index, distinct from any hidden layer's index.
_OUTPUT_INDEX = 2**16


def _widths(values, argument: str) -> tuple[int, ...]:
    """`values` as a tuple of positive layer widths, or a ValueError naming `argument`."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(
            f"Expected {argument} to be a sequence of positive integers such as (500, 500). "
            f"Received: {argument}={values!r}"
        )
    return tuple(validation.positive_int(width, f"each of {argument}") for width in values)


def _flat(inputs: tf.Tensor) -> tf.Tensor:
    """`(B, ...)` inputs as `(B, prod(...))`, unchanged when already flat."""
    if inputs.shape.rank == 2:
        return inputs
    return tf.reshape(inputs, [-1, math.prod(inputs.shape[1:])])


def _validated_shape(shape, argument: str) -> tuple[int, ...] | None:
    if shape is None:
        return None
    shape = tuple(shape)
    for size in shape:
        validation.positive_int(size, argument)
    return shape


def check_layer(layer, argument: str, returns: str = "tensors") -> None:
    """Raises a TypeError naming `argument` unless `layer` is a Keras layer (a model's
    network, which returns `returns`)."""
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            f"Expected {argument} to be a Keras layer that returns {returns}. "
            f"Received: {argument}={layer!r}"
        )


class SizedNetwork(keras.layers.Layer):
    """A layer whose output shape per example, `target_shape`, the model may set.

    In a conditional model the network also takes `condition=`, a `(batch_size,
    condition_size)` tensor that it concatenates to a flat hidden representation; the
    model sets `condition_size` as it sets `target_shape`.

    Args:
        target_shape: the output shape without the batch axis, or None to let
            `tfvae.VAE` choose it from its families.
        activation: activation of the hidden layers (any Keras activation name).
        seed: seed of the weight initializers (None: Keras's global randomness).
        condition_size: the width of the condition (0: unconditional).
    """

    def __init__(
        self, target_shape=None, activation: str = "relu", seed=None, condition_size=0, **kwargs
    ):
        target_shape = _validated_shape(target_shape, "target_shape")
        keras.activations.get(activation)  # Fails early on an unknown activation name.
        seed = validation.optional_seed(seed)
        if condition_size:
            condition_size = validation.positive_int(condition_size, "condition_size")
        super().__init__(**kwargs)
        self.target_shape = target_shape
        self.activation = activation
        self.seed = seed
        self.condition_size = int(condition_size)

    def set_condition_size(self, size: int) -> None:
        """Sets the condition width the model passes (0: none); a network can take one."""
        if (self.built or self.condition_size) and size != self.condition_size:
            raise ValueError(
                f"{self.name} takes conditions of width {self.condition_size}; the "
                f"model passes {size}. Use a new network."
            )
        self.condition_size = int(size)

    def _with_condition(self, h: tf.Tensor, condition) -> tf.Tensor:
        """`h` `(B, n)` with the flattened condition appended: `(B, n + condition_size)`."""
        if not self.condition_size:
            if condition is not None:
                raise ValueError(f"{self.name} takes no condition (condition_size=0).")
            return h
        if condition is None:
            raise ValueError(
                f"{self.name} needs condition=, a (batch_size, {self.condition_size}) tensor."
            )
        condition = tf.reshape(tf.cast(condition, h.dtype), [-1, self.condition_size])
        return tf.concat([h, condition], axis=-1)

    def _initializer(self, index: int):
        """Glorot-uniform kernels, seeded per layer from the network's seed."""
        if self.seed is None:
            return "glorot_uniform"
        layer_seed = int(np.random.default_rng([self.seed, index]).integers(2**31 - 1))
        return keras.initializers.GlorotUniform(seed=layer_seed)

    def set_target_shape(self, shape) -> None:
        """Sets the output shape the model needs; a network can be sized only once."""
        shape = _validated_shape(shape, "target_shape")
        if self.target_shape is not None and self.target_shape != shape:
            raise ValueError(
                f"{self.name} already outputs shape {self.target_shape}; the model needs "
                f"{shape}. Use a new network, or leave target_shape=None."
            )
        self.target_shape = shape

    def _require_target_shape(self) -> tuple[int, ...]:
        if self.target_shape is None:
            raise ValueError(
                f"{self.name} has no target_shape. Pass target_shape=... or use it inside "
                "tfvae.VAE, which sets it from the likelihood or posterior."
            )
        return self.target_shape

    def _reshape_output(self, flat: tf.Tensor) -> tf.Tensor:
        # Constant shapes keep exported graphs to one Reshape (no Shape/Slice/Concat chain).
        return tf.reshape(flat, [-1, *self.target_shape])

    def get_config(self):
        config = super().get_config()
        config.update(
            target_shape=self.target_shape,
            activation=self.activation,
            seed=self.seed,
            condition_size=self.condition_size,
        )
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class MLP(SizedNetwork):
    """Dense network: flatten, `hidden` dense layers, a linear output layer, reshape.

    Args:
        hidden: units of each hidden layer; `()` gives a single linear layer.
        target_shape: output shape without the batch axis (None: set by the model).
        activation: activation of the hidden layers.

    Input shape: `(batch_size, ...)`; output shape: `(batch_size, *target_shape)`.
    """

    def __init__(self, hidden=(500, 500), target_shape=None, activation="relu", **kwargs):
        hidden = _widths(hidden, "hidden")
        super().__init__(target_shape=target_shape, activation=activation, **kwargs)
        self.hidden = hidden

    def build(self, input_shape):
        target_shape = self._require_target_shape()
        self.hidden_layers = [
            keras.layers.Dense(
                units,
                activation=self.activation,
                kernel_initializer=self._initializer(i),
                dtype=self.dtype_policy,
                name=f"dense_{i}",
            )
            for i, units in enumerate(self.hidden)
        ]
        self.output_layer = keras.layers.Dense(
            math.prod(target_shape),
            kernel_initializer=self._initializer(_OUTPUT_INDEX),
            dtype=self.dtype_policy,
            name="output",
        )
        width = math.prod(input_shape[1:]) + self.condition_size
        for layer in [*self.hidden_layers, self.output_layer]:
            layer.build((None, width))
            width = layer.units

    def call(self, inputs, condition=None):
        h = _flat(inputs)  # [B, prod(input_shape)]
        h = self._with_condition(h, condition)  # [B, prod(input_shape) + condition_size]
        for layer in self.hidden_layers:
            h = layer(h)
        return self._reshape_output(self.output_layer(h))

    def get_config(self):
        config = super().get_config()
        config.update(hidden=list(self.hidden))
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class ConvEncoder(SizedNetwork):
    """Convolutional encoder for images: stride-2 3x3 convolutions, then a linear layer.

    Args:
        filters: channels of each stride-2 convolution; each halves height and width.
        target_shape: output shape without the batch axis (None: set by the model).
        activation: activation of the convolutions.

    Input shape: `(batch_size, height, width, channels)`; output:
    `(batch_size, *target_shape)`.
    """

    def __init__(self, filters=(32, 64), target_shape=None, activation="relu", **kwargs):
        filters = _widths(filters, "filters")
        super().__init__(target_shape=target_shape, activation=activation, **kwargs)
        self.filters = filters

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "Expected ConvEncoder inputs of shape (batch_size, height, width, channels). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        target_shape = self._require_target_shape()
        self.conv_layers = [
            keras.layers.Conv2D(
                f,
                3,
                strides=2,
                padding="same",
                activation=self.activation,
                kernel_initializer=self._initializer(i),
                dtype=self.dtype_policy,
            )
            for i, f in enumerate(self.filters)
        ]
        self.output_layer = keras.layers.Dense(
            math.prod(target_shape),
            kernel_initializer=self._initializer(_OUTPUT_INDEX),
            dtype=self.dtype_policy,
            name="output",
        )
        shape = tuple(input_shape)
        for layer in self.conv_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.output_layer.build((None, math.prod(shape[1:]) + self.condition_size))

    def call(self, inputs, condition=None):
        h = inputs
        for layer in self.conv_layers:
            h = layer(h)
        h = self._with_condition(_flat(h), condition)
        return self._reshape_output(self.output_layer(h))

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters))
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class ConvDecoder(SizedNetwork):
    """Convolutional decoder for images: a linear layer, stride-2 transposed convolutions.

    The target shape is `(height, width, channels, num_params)`; height and width must be
    divisible by 2 ** len(filters) (28x28 and 8x8 are, with the default two layers).

    Args:
        filters: channels of each stride-2 transposed convolution; each doubles height
            and width.
        target_shape: `(height, width, channels, num_params)` (None: set by the model).
        activation: activation of the transposed convolutions.

    Input shape: `(batch_size, latent_dim)`; output: `(batch_size, *target_shape)`.
    """

    def __init__(self, filters=(64, 32), target_shape=None, activation="relu", **kwargs):
        filters = _widths(filters, "filters")
        super().__init__(target_shape=target_shape, activation=activation, **kwargs)
        self.filters = filters

    def build(self, input_shape):
        target_shape = self._require_target_shape()
        factor = 2 ** len(self.filters)
        if len(target_shape) != 4 or target_shape[0] % factor or target_shape[1] % factor:
            raise ValueError(
                "Expected ConvDecoder target_shape (height, width, channels, num_params) with "
                f"height and width divisible by {factor}. Received: target_shape={target_shape}"
            )
        height, width, channels, num_params = target_shape
        self.start_shape = (height // factor, width // factor, self.filters[0])
        self.input_layer = keras.layers.Dense(
            math.prod(self.start_shape),
            activation=self.activation,
            kernel_initializer=self._initializer(0),
            dtype=self.dtype_policy,
            name="project",
        )
        self.deconv_layers = [
            keras.layers.Conv2DTranspose(
                f,
                3,
                strides=2,
                padding="same",
                activation=self.activation,
                kernel_initializer=self._initializer(1 + i),
                dtype=self.dtype_policy,
            )
            for i, f in enumerate(self.filters)
        ]
        self.output_layer = keras.layers.Conv2D(
            channels * num_params,
            3,
            padding="same",
            kernel_initializer=self._initializer(_OUTPUT_INDEX),
            dtype=self.dtype_policy,
            name="output",
        )
        self.input_layer.build((None, input_shape[-1] + self.condition_size))
        shape = (None, *self.start_shape)
        for layer in [*self.deconv_layers, self.output_layer]:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, condition=None):
        h = self.input_layer(self._with_condition(inputs, condition))
        h = tf.reshape(h, [-1, *self.start_shape])
        for layer in self.deconv_layers:
            h = layer(h)
        # [B, H, W, C * K] -> [B, H, W, C, K]
        return self._reshape_output(self.output_layer(h))

    def get_config(self):
        config = super().get_config()
        config.update(filters=list(self.filters))
        return config


def mlp_encoder(hidden=(500, 500), activation: str = "relu", **kwargs) -> MLP:
    """The encoder of Kingma and Welling (2014): dense layers of `hidden` units."""
    return MLP(hidden=hidden, activation=activation, name=kwargs.pop("name", "encoder"), **kwargs)


def mlp_decoder(hidden=(500, 500), activation: str = "relu", **kwargs) -> MLP:
    """The decoder of Kingma and Welling (2014): dense layers of `hidden` units."""
    return MLP(hidden=hidden, activation=activation, name=kwargs.pop("name", "decoder"), **kwargs)


def conv_encoder(filters=(32, 64), activation: str = "relu", **kwargs) -> ConvEncoder:
    """A convolutional encoder for `(height, width, channels)` images (e.g. 28x28)."""
    return ConvEncoder(
        filters=filters, activation=activation, name=kwargs.pop("name", "encoder"), **kwargs
    )


def conv_decoder(filters=(64, 32), activation: str = "relu", **kwargs) -> ConvDecoder:
    """A convolutional decoder for images whose sides are divisible by 2 ** len(filters)."""
    return ConvDecoder(
        filters=filters, activation=activation, name=kwargs.pop("name", "decoder"), **kwargs
    )
