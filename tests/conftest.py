"""Test configuration: two logical CPU devices, so tf.distribute tests have replicas."""

import tfvae._backend  # noqa: F401  (selects the TensorFlow backend before Keras loads)

import pytest
import tensorflow as tf

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


# The longest test modules, longest first, with their seconds in one run on this
# project's 2-core machine (2026-11-22, `pytest --durations=0`, summed per module; the
# suite then took 1,898 s of test time). pytest-xdist hands each worker whole modules in
# collection order (`--dist loadfile --no-loadscope-reorder`), so a long module collected
# last would keep one worker busy while the other idles; the rest keep their order.
LONGEST_FIRST = (
    "test_model.py",  # 552
    "test_inference.py",  # 272
    "test_benchmarks.py",  # 264
    "test_distribute.py",  # 125
    "test_export.py",  # 99
    "test_conditional.py",  # 84
    "test_runtime.py",  # 83
    "test_cli.py",  # 80
    "test_semi_supervised.py",  # 60
    "test_diagnostics.py",  # 49
    "test_checkpoints.py",  # 48
)


def pytest_collection_modifyitems(items):
    """Puts the modules of `LONGEST_FIRST` first, in its order (a stable sort)."""

    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


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
