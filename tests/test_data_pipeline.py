"""Tests for tfvae.data.pipeline: make_dataset and preprocess."""

import numpy as np
import pytest
import tensorflow as tf

from tfvae.data import BINARIZATIONS, make_dataset, preprocess
from tfvae.validation import MAX_SEED


def epoch(dataset):
    """One pass over `dataset` as numpy: the x batches, or (x batches, y batches)."""
    batches = [tf.nest.map_structure(lambda t: t.numpy(), element) for element in dataset]
    if isinstance(batches[0], tuple):
        return [b[0] for b in batches], [b[1] for b in batches]
    return batches


def grey_images(n=4, intensity=0.5, shape=(6, 6, 1)):
    return np.full((n, *shape), intensity, np.float32)


@pytest.mark.slow
def test_batches_shapes_and_dtypes():
    x = np.arange(10 * 2 * 3 * 1, dtype=np.uint8).reshape(10, 2, 3, 1)
    y = np.arange(10, dtype=np.int32)

    xs, ys = epoch(make_dataset(x, y, batch_size=4, shuffle=False, scale=255.0))
    assert [b.shape for b in xs] == [(4, 2, 3, 1), (4, 2, 3, 1), (2, 2, 3, 1)]
    assert all(b.dtype == np.float32 for b in xs) and all(b.dtype == np.int64 for b in ys)
    np.testing.assert_allclose(np.concatenate(xs), x.astype(np.float32) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate(ys), y)

    dropped = epoch(make_dataset(x, batch_size=4, drop_remainder=True))
    assert [b.shape for b in dropped] == [(4, 2, 3, 1), (4, 2, 3, 1)]
    kept = np.concatenate(dropped).reshape(8, 6)
    assert len(np.unique(kept, axis=0)) == 8  # 8 distinct examples of x, in their own units
    assert set(map(tuple, kept)) <= set(map(tuple, x.reshape(10, 6).astype(np.float32)))


def test_no_scale_keeps_units():
    x = np.array([[0, 7, 16]], np.uint8)
    (batch,) = epoch(make_dataset(x, shuffle=False))
    np.testing.assert_array_equal(batch, [[0.0, 7.0, 16.0]])


@pytest.mark.slow
def test_shuffle_covers_every_example_once_and_reshuffles():
    x = np.arange(50, dtype=np.float32).reshape(50, 1)
    dataset = make_dataset(x, np.arange(50), batch_size=8, seed=3)
    orders = []
    for _ in range(3):
        xs, ys = epoch(dataset)
        order = np.concatenate(ys)
        np.testing.assert_array_equal(np.sort(order), np.arange(50))  # each exactly once
        np.testing.assert_array_equal(np.concatenate(xs)[:, 0], order)  # x and y stay paired
        orders.append(order)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.arange(50))

    same_seed = make_dataset(x, np.arange(50), batch_size=8, seed=3)
    for expected in orders:
        np.testing.assert_array_equal(np.concatenate(epoch(same_seed)[1]), expected)
    other_seed = make_dataset(x, np.arange(50), batch_size=8, seed=4)
    assert not np.array_equal(np.concatenate(epoch(other_seed)[1]), orders[0])

    unshuffled = make_dataset(x, np.arange(50), batch_size=8, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(epoch(unshuffled)[1]), np.arange(50))


def test_dynamic_binarization_resamples_each_epoch_deterministically():
    x = grey_images()  # [4, 6, 6, 1], all 0.5
    first = make_dataset(x, batch_size=3, binarize="dynamic", seed=7)
    second = make_dataset(x, batch_size=3, binarize="dynamic", seed=7)
    epochs_a = [np.concatenate(epoch(first)) for _ in range(3)]
    epochs_b = [np.concatenate(epoch(second)) for _ in range(3)]

    for a in epochs_a:
        assert a.shape == x.shape and a.dtype == np.float32
        assert set(np.unique(a)) == {0.0, 1.0}
    assert not np.array_equal(epochs_a[0], epochs_a[1])  # chance of equality: 2**-144
    assert not np.array_equal(epochs_a[1], epochs_a[2])
    for a, b in zip(epochs_a, epochs_b, strict=True):
        np.testing.assert_array_equal(a, b)  # same seed: same sequence
    other = np.concatenate(epoch(make_dataset(x, batch_size=3, binarize="dynamic", seed=8)))
    assert not np.array_equal(other, epochs_a[0])


@pytest.mark.slow
def test_dynamic_binarization_frequency_matches_intensity():
    intensities = np.linspace(0.0, 1.0, 11)  # includes 0.3
    x = np.round(np.tile(intensities, (100, 1)) * 255).astype(np.uint8)  # [100, 11]
    p = x[0] / 255.0
    dataset = make_dataset(x, batch_size=50, binarize="dynamic", scale=255.0, seed=1)
    draws = np.concatenate([np.concatenate(epoch(dataset)) for _ in range(20)])  # [2000, 11]

    frequency = draws.mean(axis=0)
    standard_error = np.sqrt(p * (1 - p) / len(draws))
    np.testing.assert_array_less(np.abs(frequency - p), 4 * standard_error + 1e-12)
    assert frequency[0] == 0.0 and frequency[-1] == 1.0
    # Neighbouring examples in a batch get independent noise, not one shared draw.
    middle = draws[:, 5]  # p = 0.5
    assert 0.4 < np.mean(middle[:-1] != middle[1:]) < 0.6


def test_static_binarization_is_fixed_and_unbiased():
    x = grey_images(n=500, intensity=0.3, shape=(4, 4, 1))
    dataset = make_dataset(x, batch_size=128, binarize="static", shuffle=False, seed=5)
    first, second = np.concatenate(epoch(dataset)), np.concatenate(epoch(dataset))
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) == {0.0, 1.0}
    n = first.size  # 8000 draws
    assert abs(first.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    # Reproducible from the seed with numpy, independently of TensorFlow.
    expected = np.random.default_rng(5).random(x.shape) < x
    np.testing.assert_array_equal(first, expected.astype(np.float32))


def test_threshold_binarization():
    x = np.array([[0, 127, 128, 200, 255]], np.uint8)
    (batch,) = epoch(make_dataset(x, binarize="threshold", scale=255.0))
    np.testing.assert_array_equal(batch, [[0.0, 0.0, 1.0, 1.0, 1.0]])


def test_validation_errors():
    x = grey_images()
    with pytest.raises(ValueError, match=r"binarize.*\['dynamic', 'static', 'threshold'\]"):
        make_dataset(x, binarize="bernoulli")
    assert BINARIZATIONS == ("dynamic", "static", "threshold")
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match=f"batch_size.*Received: batch_size={bad!r}"):
            make_dataset(x, batch_size=bad)
    with pytest.raises(ValueError, match=r"one entry per example in x \(4\).*\(3,\)"):
        make_dataset(x, np.arange(3))
    with pytest.raises(ValueError, match=r"in \[0, 1\].*scale=255.0"):
        make_dataset(np.full((2, 3), 200, np.uint8), binarize="dynamic")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        make_dataset(-x, binarize="static")
    for bad in (0, -1.0, float("inf"), "255"):
        with pytest.raises(ValueError, match="scale"):
            make_dataset(x, scale=bad)
    with pytest.raises(ValueError, match="seed"):
        make_dataset(x, seed=-1)
    with pytest.raises(ValueError, match="at least one example"):
        make_dataset(np.zeros((0, 3)))


@pytest.mark.parametrize("binarize", [None, "dynamic"])
def test_a_repeated_dataset_resumes_at_any_epoch(binarize):
    x = np.arange(40, dtype=np.uint8).reshape(20, 2) * 3
    options = {"batch_size": 7, "seed": 5, "binarize": binarize, "scale": 255.0, "repeat": True}
    per_epoch = 3  # ceil(20 / 7)
    uninterrupted = [b.numpy() for b in make_dataset(x, **options).take(4 * per_epoch)]
    resumed = [b.numpy() for b in make_dataset(x, initial_epoch=2, **options).take(2 * per_epoch)]
    for expected, received in zip(uninterrupted[2 * per_epoch :], resumed, strict=True):
        np.testing.assert_array_equal(received, expected)
    epochs = [np.concatenate(uninterrupted[e * per_epoch : (e + 1) * per_epoch]) for e in range(4)]
    assert not np.array_equal(epochs[0], epochs[2])  # each epoch is drawn anew
    if binarize is None:  # every epoch holds every example once
        for epoch in epochs:
            np.testing.assert_allclose(np.sort(epoch, axis=0), x / 255.0, rtol=1e-6)


def test_initial_epoch_is_validated():
    with pytest.raises(ValueError, match=r"initial_epoch to be a non-negative integer"):
        make_dataset(np.zeros((3, 2)), initial_epoch=-1, repeat=True)
    with pytest.raises(ValueError, match=r"repeat=True with initial_epoch"):
        make_dataset(np.zeros((3, 2)), initial_epoch=2)


# ------------------------------------------------------------------------ preprocess


@pytest.mark.parametrize("binarize", ["static", "dynamic"])
@pytest.mark.parametrize(
    "values, scale", [([0.2, 1.7], None), ([-0.2, 0.5], None), ([0, 300], 255.0)]
)
def test_preprocess_refuses_probabilities_outside_the_unit_interval(binarize, values, scale):
    """Fails before the fix: 1.7 became a sure 1 and -0.2 a sure 0, silently."""
    x = np.array([values], dtype=np.float32 if scale is None else np.int64)
    with pytest.raises(ValueError) as info:
        preprocess(x, scale=scale, binarize=binarize)
    message = str(info.value)
    assert f"Expected intensities x / scale in [0, 1] for binarize={binarize!r}" in message
    low, high = (value / (scale or 1.0) for value in values)
    assert f"Received: values in [{low:g}, {high:g}] with scale={scale!r}" in message


def test_preprocess_and_make_dataset_refuse_nan_intensities():
    x = np.array([[0.5, np.nan]], np.float32)
    for build in (preprocess, make_dataset):
        with pytest.raises(ValueError, match=r"in \[0, 1\].*Received: values in \[nan, nan\]"):
            build(x, binarize="static")


def test_preprocess_matches_make_dataset():
    x = np.array([[0, 51, 128, 255]] * 3, np.uint8)
    np.testing.assert_allclose(preprocess(x, scale=255.0), x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(
        preprocess(x, scale=255.0, binarize="threshold"), [[0.0, 0.0, 1.0, 1.0]] * 3
    )
    static = preprocess(x, scale=255.0, binarize="static", seed=5)
    (batch,) = epoch(make_dataset(x, scale=255.0, binarize="static", seed=5, shuffle=False))
    np.testing.assert_array_equal(static, batch)
    np.testing.assert_array_equal(static[:, [0, 3]], [[0.0, 1.0]] * 3)  # p = 0 and 1


# ----------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, True, 1.5])
def test_seeds_outside_the_one_range_are_refused(seed):
    """MAX_SEED + 1 fails before the seed ranges were unified: make_dataset took any
    non-negative integer and preprocess anything numpy took."""
    x = grey_images()
    message = rf"Expected seed to be an integer in \[0, {MAX_SEED}\] or None. Received: seed="
    with pytest.raises(ValueError, match=message):
        make_dataset(x, seed=seed)
    with pytest.raises(ValueError, match=message):
        preprocess(x, binarize="static", seed=seed)


def test_the_largest_seed_and_none_are_accepted():
    x = grey_images()
    for seed in (MAX_SEED, None):
        assert len(epoch(make_dataset(x, seed=seed, binarize="dynamic"))) == 1
        assert preprocess(x, binarize="static", seed=seed).shape == x.shape
