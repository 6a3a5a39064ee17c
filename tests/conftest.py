"""Test configuration: two logical CPU devices, so tf.distribute tests have replicas."""

import tfvae._backend  # noqa: F401  (selects the TensorFlow backend before Keras loads)

import pytest
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)
