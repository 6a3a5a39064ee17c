"""Checks of the data given to `fit` and `evaluate`: not empty, and in the likelihood's
support.

Arrays and tensors are checked at once, with the likelihood's own numpy check
(`Likelihood.check_support`); a `tf.data.Dataset` is checked batch by batch as it is
read, by an assertion mapped over it (a dataset may be endless, or too large to read
twice). The compiled training step itself never re-checks.

Example:

>>> x = checked(np.full((4, 8, 8, 1), 255.0), "x", tfvae.likelihoods.get("bernoulli"))
Traceback (most recent call last):
ValueError: Expected x in the support of the 'bernoulli' likelihood: reals in [0, 1]. ...
"""

import tfvae._backend  # noqa: F401

import numpy as np
import tensorflow as tf


def checked(data, argument: str, likelihood):
    """`data` for `fit`/`evaluate`, checked against `likelihood`'s support.

    Args:
        data: an array or tensor x; a tuple whose first entry is x (`(x, y)`, or
            `validation_data=(x,)`); a `tf.data.Dataset` of x, `(x,)`, `(x, y)` or
            `(x, y, sample_weight)` elements; or anything else, returned as it is.
        argument: the user's name for `data` (`"x"`, `"validation_data"`), for messages.
        likelihood: the model's `tfvae.likelihoods.Likelihood`.

    Returns:
        `data`; a dataset is returned mapped through a support assertion.

    Raises:
        ValueError: for data known to hold no example, or arrays outside the support.
            A dataset's batches outside the support raise `tf.errors.InvalidArgumentError`
            when they are read, and elements that are not tensors a `TypeError`.
    """
    if isinstance(data, tf.data.Dataset):
        if data.cardinality() == 0:
            raise ValueError(
                f"Expected {argument} to hold at least one batch. Received: an empty "
                "tf.data.Dataset"
            )
        tuples = isinstance(data.element_spec, tuple)
        return data.map(support_assertion(likelihood, argument, tuples))
    if isinstance(data, tuple) and data:
        return (checked(data[0], argument, likelihood), *data[1:])
    if isinstance(data, np.ndarray | tf.Tensor):
        shape = tuple(data.shape)
        if shape and shape[0] == 0:
            raise ValueError(
                f"Expected {argument} to hold at least one example. Received: "
                f"{argument} of shape {shape}"
            )
        likelihood.check_support(data, argument)
    return data


def support_assertion(likelihood, argument: str = "x", tuples: bool = True):
    """A function for `Dataset.map` that passes elements through unchanged, failing
    with `tf.errors.InvalidArgumentError` when an element's x leaves the support.

    Args:
        likelihood: the model's likelihood.
        argument: the user's name for the dataset, for the message.
        tuples: whether the dataset's elements are tuples (x, ...), rather than x.
    """
    # No quotes around the family: a string tensor's message would print them escaped.
    message = (
        f"Expected {argument} in the support of the {likelihood.family} likelihood: "
        f"{likelihood.support}. Received: a batch of {argument} with entries outside it; "
        "its smallest and largest values:"
    )

    def assert_in_support(*element):
        x = element[0]
        if not isinstance(x, tf.Tensor):
            raise TypeError(
                "Expected dataset elements x, (x,), (x, y) or (x, y, sample_weight) with x "
                f"a tensor. Received elements whose first part is {type(x).__name__}: {x!r}"
            )
        values = tf.cast(x, tf.float32)
        inside = tf.reduce_all(likelihood.in_support(values))
        check = tf.debugging.Assert(inside, [message, tf.reduce_min(values), tf.reduce_max(values)])
        with tf.control_dependencies([check]):
            element = tf.nest.map_structure(tf.identity, element)
        return element if tuples else element[0]

    return assert_in_support
