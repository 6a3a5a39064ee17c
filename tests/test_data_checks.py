"""Tests for tfvae.data_checks: what fit and evaluate refuse before and while reading data."""

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import data_checks

BERNOULLI = tfvae.likelihoods.get("bernoulli")
BINOMIAL = tfvae.likelihoods.Binomial(total_count=16)
SUPPORT_MESSAGE = r"Expected {} in the support of the 'bernoulli' likelihood: reals in \[0, 1\]"


def test_arrays_in_the_support_pass_unchanged():
    x = np.full((4, 3), 0.5, np.float32)
    assert data_checks.checked(x, "x", BERNOULLI) is x
    pair = (x, np.arange(4))
    assert data_checks.checked(pair, "x", BERNOULLI) == pair
    assert data_checks.checked(None, "validation_data", BERNOULLI) is None


@pytest.mark.parametrize("argument", ["x", "validation_data"])
def test_arrays_outside_the_support_name_the_argument(argument):
    with pytest.raises(ValueError, match=SUPPORT_MESSAGE.format(argument) + r".*255"):
        data_checks.checked(np.full((2, 3), 255.0), argument, BERNOULLI)
    with pytest.raises(ValueError, match=SUPPORT_MESSAGE.format(argument)):
        data_checks.checked((tf.constant([[1.5]]),), argument, BERNOULLI)
    with pytest.raises(ValueError, match=r"integers in \[0, 16\]"):
        data_checks.checked(np.full((2, 3), 0.5), argument, BINOMIAL)


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match=r"x to hold at least one example. Received: x of"):
        data_checks.checked(np.zeros((0, 3)), "x", BERNOULLI)
    empty = tf.data.Dataset.from_tensor_slices(np.zeros((0, 3))).batch(2)
    with pytest.raises(ValueError, match=r"x to hold at least one batch"):
        data_checks.checked(empty, "x", BERNOULLI)


@pytest.mark.parametrize("element", ["x", "(x,)", "(x, y)", "(x, y, w)"])
def test_datasets_pass_every_element_format_through_unchanged(element):
    x = np.full((6, 3), 0.25, np.float32)
    parts = {"x": x, "(x,)": (x,), "(x, y)": (x, np.arange(6)), "(x, y, w)": (x, x, x)}
    dataset = tf.data.Dataset.from_tensor_slices(parts[element]).batch(4)
    checked = data_checks.checked(dataset, "x", BERNOULLI)
    assert checked.element_spec == dataset.element_spec
    for got, expected in zip(checked, dataset, strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, got, expected)


def test_a_dataset_batch_outside_the_support_fails_when_read():
    """The assertion reports the argument, the support and the batch's extremes."""
    x = np.full((6, 3), 0.5, np.float32)
    x[5, 0] = 2.0  # in the second batch
    dataset = data_checks.checked(tf.data.Dataset.from_tensor_slices(x).batch(4), "x", BERNOULLI)
    iterator = iter(dataset)
    next(iterator)  # the first batch is fine
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        next(iterator)
    assert (
        "Expected x in the support of the bernoulli likelihood: reals in [0, 1]. Received: "
        "a batch of x with entries outside it; its smallest and largest values:] [0.5] [2]"
    ) in str(info.value)


def test_a_dataset_of_dicts_is_a_clear_type_error():
    dataset = tf.data.Dataset.from_tensor_slices({"x": np.zeros((4, 3))}).batch(2)
    with pytest.raises(TypeError, match=r"Expected dataset elements x, \(x,\), \(x, y\)"):
        data_checks.checked(dataset, "x", BERNOULLI)
