"""Tests for tfvae.compiled: one function per key, compiled with XLA exactly when asked."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import compiled, networks


def host_identity(x):
    """x, computed on the host by numpy: a graph op that XLA cannot compile."""
    y = tf.numpy_function(lambda a: a, [x], x.dtype, stateful=False)
    y.set_shape(x.shape)
    return y


def mlp_vae():
    return tfvae.VAE(networks.mlp_encoder((8,)), networks.mlp_decoder((8,)), latent_dim=2)


def conv_vae():
    return tfvae.VAE(networks.conv_encoder((4,)), networks.conv_decoder((4,)), latent_dim=2)


@pytest.mark.parametrize(
    "requested, expected", [(True, True), (False, False), (None, False), (1, True), (0, False)]
)
def test_resolve_jit_compile_takes_other_values_by_truth(requested, expected):
    """As Keras counts them; for a conv model too, whose "auto" is False on a CPU."""
    assert compiled.resolve_jit_compile(requested, conv_vae()) is expected


def test_auto_is_xla_on_a_cpu_for_dense_networks_and_not_for_convolutions():
    mlp, conv = mlp_vae(), conv_vae()
    conv.build((None, 8, 8, 1))  # ConvEncoder creates its Conv2D layers when built
    assert compiled.auto_jit_compile(mlp, accelerator=False) is True
    assert compiled.auto_jit_compile(conv, accelerator=False) is False
    # Any convolution of Keras counts, in a network of the user's own.
    encoder = keras.Sequential([keras.layers.SeparableConv2D(2, 3), keras.layers.Flatten()])
    assert (
        compiled.auto_jit_compile(tfvae.VAE(encoder, networks.mlp_decoder((8,)), 2), False) is False
    )


def test_auto_is_xla_on_an_accelerator_whatever_the_layers():
    conv = conv_vae()
    conv.build((None, 8, 8, 1))
    assert compiled.auto_jit_compile(conv, accelerator=True) is True
    assert compiled.auto_jit_compile(mlp_vae(), accelerator=True) is True


def test_auto_asks_the_devices_when_not_told(monkeypatch):
    conv = conv_vae()
    conv.build((None, 8, 8, 1))
    monkeypatch.setattr(compiled, "has_accelerator", lambda: True)
    assert compiled.resolve_jit_compile("auto", conv) is True
    monkeypatch.setattr(compiled, "has_accelerator", lambda: False)
    assert compiled.resolve_jit_compile("auto", conv) is False
    assert compiled.resolve_jit_compile("auto", mlp_vae()) is True


def test_has_accelerator_reads_tensorflows_devices():
    devices = {device.device_type for device in tf.config.list_physical_devices()}
    assert compiled.has_accelerator() is bool(devices - {"CPU"})


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
