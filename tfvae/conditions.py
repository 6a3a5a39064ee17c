"""The condition y of a conditional VAE: its shape, its checks, and how it reaches the
networks.

A conditional VAE (Sohn et al., 2015) models p(x|z, y) and q(z|x, y): both networks get y
as `condition=`, flattened to `(batch_size, prod(condition_shape))`. This module owns
everything about y that is not the model's math:

    - `checked_shape`: the constructor's `condition_shape` argument;
    - `check`: a condition against the model's `condition_shape` (None without one);
    - `call`: a network called with its condition, flattened;
    - `broadcast`: a condition `(B, *condition_shape)` repeated over z's leading axes
      `(..., B)`, e.g. the L latent samples per example;
    - `repeat`: one condition for all n samples;
    - `split_inputs` and `unpack`: y found in `call`'s inputs and in `fit`'s batches.

Example:

>>> condition = check(np.eye(10)[[3, 1]], condition_shape=(10,), batch_size=2)
>>> flatten(condition, (10,)).shape
TensorShape([2, 10])
"""

import math

import tfvae._backend  # noqa: F401

import keras
import numpy as np
import tensorflow as tf

from tfvae import validation


def checked_shape(condition_shape) -> tuple[int, ...] | None:
    """`condition_shape` as a tuple of positive integers, or None (an unconditional model).

    Raises:
        ValueError: for an integer, a string, an empty sequence, or sizes < 1.
    """
    if condition_shape is None:
        return None
    if isinstance(condition_shape, int | str) or not condition_shape:
        raise ValueError(
            "Expected condition_shape to be a non-empty tuple of positive integers "
            f"such as (10,). Received: condition_shape={condition_shape!r}"
        )
    return tuple(validation.positive_int(size, "condition_shape") for size in condition_shape)


def check(condition, condition_shape, batch_size=None, dtype=tf.float32) -> tf.Tensor | None:
    """The condition as a `(batch_size, *condition_shape)` tensor of `dtype`, or None.

    Args:
        condition: the user's condition y, or None.
        condition_shape: the model's `condition_shape`; None for an unconditional model.
        batch_size: the batch size it must have, when known.
        dtype: the floating dtype of the result.

    Raises:
        ValueError: a condition for an unconditional model, none for a conditional one,
            or one of another shape (also another batch size, when known).
    """
    if condition_shape is None:
        if condition is not None:
            raise ValueError(
                "This model has no condition_shape; it takes no condition. Received a "
                f"condition of shape {tuple(np.shape(condition))}"
            )
        return None
    if condition is None:
        raise ValueError(
            "This conditional model needs a condition of shape (batch_size, "
            f"*{condition_shape}): pass condition=..., or (x, y) to fit."
        )
    condition = tf.cast(tf.convert_to_tensor(condition), dtype)
    expected = (batch_size, *condition_shape)
    shape = condition.shape
    if shape.rank is not None and (
        shape.rank != len(expected)
        or any(
            d is not None and e is not None and d != e for d, e in zip(shape, expected, strict=True)
        )
    ):
        raise ValueError(
            f"Expected a condition of shape (batch_size, *{condition_shape})"
            + (f" with batch_size={batch_size}" if batch_size is not None else "")
            + f". Received: condition.shape={tuple(shape)}"
        )
    return condition


def flatten(condition, condition_shape) -> tf.Tensor:
    """A checked condition `(B, *condition_shape)` as the networks take it, `(B, C)`."""
    return tf.reshape(condition, [-1, math.prod(condition_shape)])


def call(network, inputs, condition, condition_shape, training=False):
    """Calls `network` on `inputs`, with `condition=` the flattened condition if any."""
    if condition is None:
        return network(inputs, training=training)
    return network(inputs, condition=flatten(condition, condition_shape), training=training)


def broadcast(condition, condition_shape, leading_shape) -> tf.Tensor:
    """A condition `(B, *condition_shape)` repeated over `leading_shape` `(..., B)`.

    Args:
        condition: a checked condition, `(B, *condition_shape)`.
        condition_shape: the model's `condition_shape`.
        leading_shape: z's shape without its last axis, e.g. `[L, B]`, a 1-D tensor.

    Returns:
        `(prod(leading_shape), C)`, one flattened condition per latent vector, in z's
        row-major order.
    """
    size = math.prod(condition_shape)
    condition = flatten(condition, condition_shape)  # [B, C]
    condition = tf.broadcast_to(condition, tf.concat([leading_shape, [size]], 0))  # [..., B, C]
    return tf.reshape(condition, [-1, size])


def repeat(condition, condition_shape, n: int):
    """One condition `condition_shape` for all `n` samples as `(n, *condition_shape)`;
    anything else (None, or one condition per sample) is returned as it is."""
    if condition_shape is not None and np.shape(condition) == tuple(condition_shape):
        return tf.broadcast_to(tf.cast(condition, tf.float32), [n, *condition_shape])
    return condition


def as_tensor(condition) -> tf.Tensor | None:
    """A user's condition as a float32 tensor (the argument of a compiled function), or None."""
    if condition is None:
        return None
    return tf.cast(tf.convert_to_tensor(condition), tf.float32)


def split_inputs(inputs, condition_shape):
    """`(x, condition)` of a model's inputs: x, or `(x, condition)` for a conditional model.

    Raises:
        ValueError: a conditional model called on anything but a pair.
    """
    if condition_shape is None:
        return inputs, None
    if isinstance(inputs, tuple | list) and len(inputs) == 2:
        return tuple(inputs)
    raise ValueError(
        "Expected inputs (x, condition) for this conditional model. Received: "
        f"inputs of type {type(inputs).__name__}"
    )


def unpack(data, conditional: bool):
    """`(x, condition, sample_weight)` of a training or evaluation batch.

    A conditional model's condition is y: `fit(x, y)`, batches `(x, y)`, or
    `fit((x, y))`, which Keras passes as a pair of inputs. An unconditional model
    ignores y (labels that come with the data).
    """
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if not conditional:
        return x, None, sample_weight
    if y is None and isinstance(x, tuple | list) and len(x) == 2:
        x, y = x
    return x, y, sample_weight
