"""Tests for tfvae.compiled: one function per key, compiled with XLA exactly when asked."""

import numpy as np
import pytest
import tensorflow as tf

from tfvae import compiled


def host_identity(x):
    """x, computed on the host by numpy: a graph op that XLA cannot compile."""
    y = tf.numpy_function(lambda a: a, [x], x.dtype, stateful=False)
    y.set_shape(x.shape)
    return y


@pytest.mark.parametrize(
    "requested, expected",
    [(True, True), (False, False), ("auto", True), (None, False), (1, True), (0, False)],
)
def test_resolve_jit_compile(requested, expected):
    """True and "auto" (also a model never compiled) use XLA; False does not; other
    values count as Keras counts them, by truth."""
    assert compiled.resolve_jit_compile(requested) is expected


def test_without_xla_a_function_runs_ops_that_xla_cannot_compile():
    functions = compiled.CompiledFunctions(jit_compile=False)
    identity = functions.get(("identity",), lambda: host_identity)
    np.testing.assert_array_equal(identity(tf.constant([1.0, 2.0])).numpy(), [1.0, 2.0])


def test_with_xla_the_same_function_is_refused_by_xla():
    """Fails if the cache ignored its flag: the host op would then simply run."""
    functions = compiled.CompiledFunctions(jit_compile=True)
    identity = functions.get(("identity",), lambda: host_identity)
    with pytest.raises(tf.errors.InvalidArgumentError, match="unsupported operations"):
        identity(tf.constant([1.0, 2.0]))


def test_a_function_is_built_once_per_key():
    functions = compiled.CompiledFunctions()
    builds = []

    def build(power):
        builds.append(power)
        return lambda x: x**power

    square = functions.get(("power", 2), lambda: build(2))
    assert functions.get(("power", 2), lambda: build(2)) is square
    cube = functions.get(("power", 3), lambda: build(3))
    assert builds == [2, 3] and len(functions) == 2
    assert float(square(tf.constant(3.0))) == 9.0 and float(cube(tf.constant(2.0))) == 8.0


def test_reset_forgets_the_functions_and_applies_the_new_choice():
    functions = compiled.CompiledFunctions(jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError):
        functions.get(("identity",), lambda: host_identity)(tf.ones(2))
    functions.reset(jit_compile=False)
    assert len(functions) == 0 and functions.jit_compile is False
    np.testing.assert_array_equal(
        functions.get(("identity",), lambda: host_identity)(tf.ones(2)).numpy(), [1.0, 1.0]
    )
