"""Tests for tfvae.conditions: checks, flattening, broadcasting and unpacking of y."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import conditions

SHAPE = (2, 3)  # a condition shape of rank 2, so that flattening shows


def test_checked_shape_accepts_tuples_and_lists_of_positive_sizes():
    assert conditions.checked_shape(None) is None
    assert conditions.checked_shape([10]) == (10,)
    assert conditions.checked_shape((2, np.int64(3))) == SHAPE


@pytest.mark.parametrize("value", [10, "10", (), []])
def test_checked_shape_refuses_what_is_not_a_non_empty_tuple(value):
    with pytest.raises(ValueError, match=r"condition_shape to be a non-empty tuple"):
        conditions.checked_shape(value)


@pytest.mark.parametrize("value", [(0,), (3, -1), (2.5,)])
def test_checked_shape_refuses_sizes_below_one(value):
    with pytest.raises(ValueError, match=r"Expected condition_shape to be a positive integer"):
        conditions.checked_shape(value)


def test_check_returns_the_condition_in_the_requested_dtype():
    y = np.arange(12).reshape(2, *SHAPE)
    checked = conditions.check(y, SHAPE, batch_size=2, dtype=tf.float64)
    assert checked.dtype == tf.float64
    np.testing.assert_array_equal(checked.numpy(), y)
    assert conditions.check(None, None) is None


@pytest.mark.parametrize(
    "condition, condition_shape, batch_size, match",
    [
        (np.zeros((2, 3)), None, None, r"has no condition_shape; it takes no condition"),
        (None, SHAPE, None, r"needs a condition of shape \(batch_size, \*\(2, 3\)\)"),
        (np.zeros((2, 6)), SHAPE, None, r"Received: condition.shape=\(2, 6\)"),
        (np.zeros((3, *SHAPE)), SHAPE, 2, r"with batch_size=2. Received"),
    ],
    ids=["unconditional", "missing", "flat", "batch_size"],
)
def test_check_says_what_was_expected(condition, condition_shape, batch_size, match):
    with pytest.raises(ValueError, match=match):
        conditions.check(condition, condition_shape, batch_size)


def test_broadcast_repeats_each_examples_condition_over_the_samples():
    y = np.arange(12, dtype="float32").reshape(2, *SHAPE)  # [B=2, 2, 3]
    rows = conditions.broadcast(tf.constant(y), SHAPE, tf.constant([4, 2]))  # z: [L=4, B=2, D]
    # z's rows in row-major order: sample l, example b -> row 2 l + b.
    expected = np.tile(y.reshape(2, 6), (4, 1))
    np.testing.assert_array_equal(rows.numpy(), expected)


def test_call_passes_the_flattened_condition_only_when_there_is_one():
    class Recorder(keras.layers.Layer):
        def call(self, inputs, condition=None, training=False):
            self.received = condition
            return inputs

    network = Recorder()
    conditions.call(network, tf.ones((2, 1)), None, None)
    assert network.received is None
    y = conditions.check(np.ones((2, *SHAPE)), SHAPE, 2)
    conditions.call(network, tf.ones((2, 1)), y, SHAPE)
    assert tuple(network.received.shape) == (2, 6)


def test_repeat_broadcasts_one_condition_to_every_sample():
    one = np.array([0.0, 1.0, 0.0], dtype="float32")
    repeated = conditions.repeat(one, (3,), 4)
    np.testing.assert_array_equal(repeated.numpy(), np.tile(one, (4, 1)))
    each = np.eye(3, dtype="float32")
    assert conditions.repeat(each, (3,), 3) is each  # one per sample: unchanged
    assert conditions.repeat(None, None, 3) is None


def test_split_inputs():
    x, y = np.zeros((2, 4)), np.zeros((2, 3))
    assert conditions.split_inputs(x, None) == (x, None)
    assert conditions.split_inputs([x, y], (3,)) == (x, y)
    with pytest.raises(ValueError, match=r"Expected inputs \(x, condition\).*ndarray"):
        conditions.split_inputs(x, (3,))


@pytest.mark.parametrize(
    "data, conditional, expected",
    [
        ("x", False, ("x", None, None)),
        (("x", "y"), False, ("x", None, None)),  # labels that came with the data
        (("x", "y", "w"), False, ("x", None, "w")),
        (("x", "y"), True, ("x", "y", None)),
        (("x", "y", "w"), True, ("x", "y", "w")),
        ((("x", "y"),), True, ("x", "y", None)),  # fit((x, y)): a pair of inputs
    ],
)
def test_unpack(data, conditional, expected):
    assert conditions.unpack(data, conditional) == expected


def test_as_tensor():
    assert conditions.as_tensor(None) is None
    tensor = conditions.as_tensor(np.arange(3))
    assert tensor.dtype == tf.float32
    np.testing.assert_array_equal(tensor.numpy(), [0.0, 1.0, 2.0])
