"""Test configuration: two logical CPU devices, so tf.distribute tests have replicas."""

import tfvae._backend  # noqa: F401  (selects the TensorFlow backend before Keras loads)

import pytest
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def mirrored():
    """A MirroredStrategy over the two logical CPUs, one per test process: several in one
    process can mix up collective keys."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2, "two logical CPUs are configured above"
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
