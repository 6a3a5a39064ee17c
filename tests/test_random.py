"""Tests for tfvae.random: XLA-stable normal noise (checked with scipy) and seed handling."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tests.helpers import NUM_SE, seed
from tfvae import random
from tfvae.validation import MAX_SEED


def test_standard_normal_noise_is_the_same_with_and_without_xla():
    def draw(seed):
        return random.standard_normal([4, 8, 5], seed)

    s = seed(123, 7)
    eager = draw(s).numpy()
    graph = tf.function(draw)(s).numpy()
    xla = tf.function(draw, jit_compile=True)(s).numpy()

    np.testing.assert_array_equal(graph, eager)
    assert np.max(np.abs(xla - eager)) < 1e-5


def test_standard_normal_noise_is_normal():
    draws = random.standard_normal([100_000], seed(42)).numpy().astype(np.float64)

    assert stats.kstest(draws, "norm").pvalue > 1e-3


def test_standard_normal_noise_depends_on_the_seed():
    a = random.standard_normal([1000], seed(1)).numpy()
    b = random.standard_normal([1000], seed(2)).numpy()
    c = random.standard_normal([1000], seed(1, 1)).numpy()

    np.testing.assert_array_equal(a, random.standard_normal([1000], seed(1)).numpy())
    assert not np.any(a == b) and not np.any(a == c)
    # Independent streams: correlation within 4 standard errors of 0.
    assert abs(np.corrcoef(a, b)[0, 1]) < NUM_SE / np.sqrt(1000)


def test_standard_normal_noise_dtype():
    draws = random.standard_normal([3], seed(0), dtype=tf.float64)
    assert draws.dtype == tf.float64
    np.testing.assert_allclose(
        draws.numpy(), random.standard_normal([3], seed(0)).numpy(), rtol=1e-6
    )


def test_split_and_as_seed():
    first, second = random.split(seed(9))
    assert first.shape == second.shape == (2,)
    assert not np.array_equal(first.numpy(), second.numpy())
    np.testing.assert_array_equal(random.as_seed(5).numpy(), [5, 0])
    assert random.as_seed(5).dtype == tf.int64
    np.testing.assert_array_equal(random.as_seed(tf.constant([1, 2])).numpy(), [1, 2])


def test_as_seed_accepts_numpy_integers():
    from_numpy = random.as_seed(np.int64(3))

    assert from_numpy.dtype == tf.int64
    np.testing.assert_array_equal(from_numpy.numpy(), random.as_seed(3).numpy())
    np.testing.assert_array_equal(from_numpy.numpy(), [3, 0])


@pytest.mark.parametrize(
    "pair", [[1, 2], (1, 2), np.array([1, 2], dtype=np.int32), np.array([1, 2], dtype=np.uint8)]
)
def test_as_seed_accepts_a_pair_of_integers(pair):
    result = random.as_seed(pair)

    assert result.dtype == tf.int64
    np.testing.assert_array_equal(result.numpy(), [1, 2])


@pytest.mark.parametrize(
    "value", [1.5, [1, 2, 3], "a", True, [1.0, 2.0], [[1, 2]], np.float32(3.0)]
)
def test_as_seed_rejects_other_values(value):
    with pytest.raises(ValueError) as info:
        random.as_seed(value)
    assert str(info.value) == (
        "Expected seed to be an integer in [0, 2147483647] or a (2,) integer tensor. "
        f"Received: seed={value!r}"
    )


def test_as_seed_errors_name_the_callers_argument():
    with pytest.raises(ValueError, match=r"Received: sample_seed=1.5"):
        random.as_seed(1.5, argument="sample_seed")


@pytest.mark.parametrize("value", [None, 2**64], ids=["None", "2**64"])
def test_as_seed_errors_name_the_argument_for_unconvertible_values(value):
    with pytest.raises(ValueError, match=r"Received: seed="):
        random.as_seed(value)


@pytest.mark.parametrize("value", [-1, MAX_SEED + 1, -(2**62)])
def test_as_seed_takes_integers_in_the_one_seed_range_only(value):
    """Fails before the seed ranges were unified: any |seed| < 2**63 was accepted, so
    -1 here and in [0, MAX_SEED] in `tfvae.validation` named different seeds."""
    with pytest.raises(ValueError, match=rf"integer in \[0, {MAX_SEED}\].*Received: seed={value}"):
        random.as_seed(value)


def test_as_seed_takes_the_largest_seed_and_any_stream_state():
    np.testing.assert_array_equal(random.as_seed(MAX_SEED).numpy(), [MAX_SEED, 0])
    state = tf.constant([-5, 2**40], dtype=tf.int64)  # a stream's state is not a user seed
    np.testing.assert_array_equal(random.as_seed(state).numpy(), state.numpy())


# ------------------------------------------------------------- the streams' states


def _streams(seed_value):
    return {"train": keras.random.SeedGenerator(seed_value), "eval": keras.random.SeedGenerator(1)}


def test_saved_states_continue_the_streams():
    streams = _streams(3)
    streams["train"].next()  # moved on, so that a fresh stream would differ
    store = {"0": np.zeros(2)}  # the owner's own variable
    random.save_states(store, streams)
    assert set(store) == {"0", "train", "eval"}
    restored = _streams(99)
    others = random.load_states(store, restored)
    assert set(others) == {"0"}
    for name, stream in streams.items():
        np.testing.assert_array_equal(restored[name].next().numpy(), stream.next().numpy())


def test_loading_a_store_without_the_states_leaves_the_streams_alone():
    """Files written before the states were saved hold only the owner's variables."""
    streams = _streams(3)
    before = {name: stream.state.numpy().copy() for name, stream in streams.items()}
    assert random.load_states({"0": 1.0, "1": 2.0}, streams) == {"0": 1.0, "1": 2.0}
    for name, stream in streams.items():
        np.testing.assert_array_equal(stream.state.numpy(), before[name])
