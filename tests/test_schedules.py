"""Tests for tfvae.schedules: KL-weight schedules against formulas written out here."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import schedules


def _values(schedule, steps):
    return np.array([float(schedule(tf.constant(t, tf.int64))) for t in steps])


def test_linear_warmup_rises_linearly_then_stays():
    schedule = schedules.LinearWarmup(steps=8, start=0.2, end=1.0)
    steps = np.arange(12)
    expected = [0.2 + 0.8 * min(t / 8, 1.0) for t in steps]
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=1e-6)


def test_cyclical_repeats_a_ramp_each_period_and_ends_at_the_top():
    schedule = schedules.Cyclical(period=10, ramp_fraction=0.4, cycles=2, end=2.0)
    steps = np.arange(35)
    expected = []
    for t in steps:
        position = t % 10
        ramp = 2.0 * min(position / 4.0, 1.0)
        expected.append(2.0 if t >= 20 else ramp)
    np.testing.assert_allclose(_values(schedule, steps), expected, rtol=1e-6)
    assert _values(schedule, [0, 10])[1] == 0.0  # the second cycle starts again at 0


def test_cyclical_without_an_end_keeps_cycling():
    schedule = schedules.Cyclical(period=4, ramp_fraction=0.5)
    np.testing.assert_allclose(_values(schedule, [0, 1, 2, 3, 100, 101]), [0, 0.5, 1, 1, 0, 0.5])


def test_schedules_run_under_xla():
    schedule = schedules.Cyclical(period=6, ramp_fraction=0.5, cycles=1)
    compiled = tf.function(lambda t: schedule(t), jit_compile=True)
    for t in (0, 2, 5, 7):
        assert float(compiled(tf.constant(t, tf.int64))) == float(schedule(tf.constant(t)))


@pytest.mark.parametrize(
    "schedule",
    [schedules.LinearWarmup(steps=5, start=0.1, end=2.0), schedules.Cyclical(3, 0.25, 4, 0.5)],
)
def test_schedules_serialize_with_keras(schedule):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert restored == schedule and type(restored) is type(schedule)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: schedules.LinearWarmup(steps=0), "steps"),
        (lambda: schedules.LinearWarmup(steps=5, end=-1.0), "end"),
        (lambda: schedules.Cyclical(period=5, ramp_fraction=1.5), "ramp_fraction"),
        (lambda: schedules.Cyclical(period=5, cycles=0), "cycles"),
        (lambda: schedules.get("exponential"), r"'cyclical', 'linear_warmup'"),
    ],
)
def test_bad_schedule_arguments_are_rejected(build, match):
    with pytest.raises(ValueError, match=match):
        build()
