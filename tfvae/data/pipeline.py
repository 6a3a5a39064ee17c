"""The input pipeline: numpy arrays to a shuffled, batched, binarized `tf.data.Dataset`."""

import tfvae._backend  # noqa: F401

import numpy as np
import tensorflow as tf

from tfvae import validation

__all__ = ["BINARIZATIONS", "make_dataset", "preprocess"]

BINARIZATIONS = ("dynamic", "static", "threshold")
"""The values `make_dataset` accepts for `binarize`, besides None."""

_STATIC_CHUNK = 4096  # Examples binarized at a time, to bound the memory of the uniforms.


_LAST_EPOCH = 2**62  # "without end": Dataset.range needs a stop


def make_dataset(
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    batch_size: int = 100,
    shuffle: bool = True,
    seed: int | None = 0,
    binarize: str | None = None,
    scale: float | None = None,
    drop_remainder: bool = False,
    repeat: bool = False,
    initial_epoch: int = 0,
) -> tf.data.Dataset:
    """Builds a `tf.data.Dataset` of float32 batches from in-memory arrays.

    Each pass over the dataset is one epoch: every example exactly once (the last batch
    is smaller unless `drop_remainder`), in a new order each epoch when `shuffle`. With
    `repeat`, the dataset is instead an endless sequence of epochs, epoch e drawn from a
    seed made of `seed` and e, and it starts at epoch `initial_epoch`: train on it with
    `fit(..., steps_per_epoch=ceil(num_examples / batch_size))`, and a run resumed after
    k epochs continues with `initial_epoch=k`, the same data order and noise as a run
    that was never interrupted (Keras creates iterators at its own pace, so only an
    epoch's own seed makes it reproducible). The
    examples are kept in memory in their own dtype (uint8 MNIST stays 1 byte per pixel)
    and converted per batch.

    Mathematical details: with intensity `p = x / scale` (`p = x` when `scale` is None),
    `binarize` gives
    - None: `p` itself, as float32;
    - "threshold": `1[p > 0.5]`;
    - "static": `b ~ Bernoulli(p)`, sampled once with `np.random.default_rng(seed)`, so
      every epoch sees the same binary images;
    - "dynamic": `b ~ Bernoulli(p)`, sampled anew for every batch of every epoch, the
      convention behind published MNIST log-likelihoods. The noise comes from stateless
      random ops keyed by the epoch's seed and the batch's index, so two datasets built
      with the same arguments yield the same sequence of epochs, while successive
      epochs of one dataset differ.

    Args:
        x: examples, shape `(num_examples, ...)`, typically
            `(num_examples, height, width, channels)`; any numeric dtype.
        y: optional labels, shape `(num_examples, ...)`; integer labels become int64.
        batch_size: examples per batch, a positive integer.
        shuffle: whether to reshuffle the examples every epoch.
        seed: an integer in [0, `tfvae.validation.MAX_SEED`] that fixes the shuffling and
            the binarization noise, or None for fresh entropy (not reproducible).
        binarize: None, "threshold", "static" or "dynamic" (see above). "static" and
            "dynamic" need `0 <= x / scale <= 1`.
        scale: a positive number `x` is divided by (e.g. 255.0 for MNIST grey levels), or
            None to leave the units alone (e.g. digits counts 0..16 for a binomial
            likelihood with `total_count=16`).
        drop_remainder: whether to drop the last batch when it is smaller than
            `batch_size`.
        repeat: yield epoch after epoch without end (see above).
        initial_epoch: with `repeat`, the first epoch's index (>= 0).

    Returns:
        A dataset whose elements are `x` batches, float32 of shape
        `(batch_size, ...)`, or `(x, y)` tuples when `y` is given, prefetched with
        `tf.data.AUTOTUNE`.

    Raises:
        ValueError: if `x` is empty or not numeric; `y` has a different length;
            `batch_size` is not a positive integer; `seed` is not an integer in
            [0, MAX_SEED] or None; `scale` is not a positive finite number or None;
            `binarize` is not one of the options (the message lists them); or
            "static"/"dynamic" intensities lie outside [0, 1].

    Example:

    >>> import numpy as np
    >>> x = np.arange(2 * 5 * 3 * 3, dtype=np.uint8).reshape(10, 3, 3, 1)
    >>> dataset = make_dataset(x, batch_size=4, scale=255.0, binarize="dynamic")
    >>> [tuple(batch.shape) for batch in dataset]
    [(4, 3, 3, 1), (4, 3, 3, 1), (2, 3, 3, 1)]
    """
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise ValueError(f"Expected x to be a numeric array. Received: x with dtype {x.dtype}")
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(
            f"Expected x to have shape (num_examples, ...) with at least one example. "
            f"Received: x with shape {x.shape}"
        )
    if y is not None:
        y = np.asarray(y)
        if y.ndim < 1 or len(y) != len(x):
            raise ValueError(
                f"Expected y to have one entry per example in x ({len(x)}). "
                f"Received: y with shape {y.shape}"
            )
        if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
            y = y.astype(np.int64)
    validation.positive_int(batch_size, "batch_size")
    validation.non_negative_int(initial_epoch, "initial_epoch")
    if initial_epoch and not repeat:
        raise ValueError(
            "Expected repeat=True with initial_epoch: only an endless dataset has addressable "
            f"epochs. Received: initial_epoch={initial_epoch}, repeat=False"
        )
    validation.seed(seed, optional=True)
    if scale is not None and (
        isinstance(scale, bool)
        or not isinstance(scale, int | float | np.integer | np.floating)
        or not np.isfinite(scale)
        or scale <= 0
    ):
        raise ValueError(
            f"Expected scale to be a positive finite number or None (e.g. 255.0 for MNIST "
            f"grey levels). Received: scale={scale!r}"
        )
    if binarize is not None and binarize not in BINARIZATIONS:
        raise ValueError(
            f"Expected binarize to be None or one of {list(BINARIZATIONS)}. "
            f"Received: binarize={binarize!r}"
        )
    divisor = 1.0 if scale is None else float(scale)
    if binarize in ("static", "dynamic"):
        _check_probabilities(x, divisor, scale, binarize)

    # The seed of every epoch's order and noise, fixed by `seed` (fresh entropy for None).
    epoch_seed = int(np.random.SeedSequence(seed).generate_state(1, dtype=np.uint32)[0])
    if binarize == "static":
        x, divisor = _sample_bernoulli(x, divisor, seed), 1.0  # [N, ...] uint8 in {0, 1}

    x_all = tf.constant(x)  # [N, ...], stored in its own dtype
    y_all = None if y is None else tf.constant(y)  # [N, ...]

    def to_intensity(indices):  # [B] -> [B, ...] float32
        batch = tf.cast(tf.gather(x_all, indices), tf.float32)
        return batch if divisor == 1.0 else batch / divisor

    def output(indices, x_batch):
        return x_batch if y_all is None else (x_batch, tf.gather(y_all, indices))

    def batches_of_epoch(key):  # [2] int64 seed -> (batch key [2], batch indices [B])
        order = tf.range(len(x), dtype=tf.int64)  # [N]
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=key)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(
            batch_size, drop_remainder=drop_remainder
        )
        return batches.enumerate().map(
            lambda index, indices: (tf.random.experimental.stateless_fold_in(key, index), indices)
        )

    def transform(key, batch_indices):
        intensity = to_intensity(batch_indices)  # [B, ...]
        if binarize == "threshold":
            intensity = tf.cast(intensity > 0.5, tf.float32)
        elif binarize == "dynamic":
            uniform = tf.random.stateless_uniform(tf.shape(intensity), seed=key)
            intensity = tf.cast(uniform < intensity, tf.float32)
        return output(batch_indices, intensity)

    if repeat:  # epoch e has the key (seed, e): epochs are addressable, for resuming
        keys = tf.data.Dataset.range(initial_epoch, _LAST_EPOCH)
        keys = keys.map(lambda epoch: tf.stack([tf.constant(epoch_seed, tf.int64), epoch]))
    else:  # a new key for every pass over the dataset
        keys = tf.data.Dataset.random(seed=epoch_seed, rerandomize_each_iteration=True).take(1)
        keys = keys.map(lambda key: tf.stack([key, tf.constant(0, tf.int64)]))
    dataset = keys.flat_map(batches_of_epoch)
    return dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def preprocess(x, scale=None, binarize=None, seed=0) -> np.ndarray:
    """`x` as float32 model input in memory, as `make_dataset` would yield it.

    `scale` and `binarize` mean what they mean for `make_dataset`, except that "dynamic"
    is drawn once, like "static": for evaluation, where the data must stay fixed.

    Args:
        x: array `(num_examples, ...)` in the dataset's own units.
        scale: divisor of x, or None.
        binarize: None, "threshold", "static" or "dynamic".
        seed: seed of the Bernoulli draw, an integer in [0, `tfvae.validation.MAX_SEED`],
            or None for fresh entropy.

    Returns:
        float32 array shaped like x.

    Raises:
        ValueError: for a bad `scale`, `binarize` or `seed`, or, with "static" or
            "dynamic", intensities x / scale outside [0, 1] (probabilities of a
            Bernoulli draw).

    Example:

    >>> preprocess(np.array([[0, 128, 255]], np.uint8), scale=255.0, binarize="threshold")
    array([[0., 1., 1.]], dtype=float32)
    """
    if binarize is not None and binarize not in BINARIZATIONS:
        raise ValueError(
            f"Expected binarize to be None or one of {list(BINARIZATIONS)}. "
            f"Received: binarize={binarize!r}"
        )
    divisor = 1.0 if scale is None else validation.positive_float(scale, "scale")
    seed = validation.seed(seed, optional=True)
    x = np.asarray(x)
    if binarize in ("static", "dynamic"):
        _check_probabilities(x, divisor, scale, binarize)
        return _sample_bernoulli(x, divisor, seed).astype(np.float32)
    intensity = x.astype(np.float32) / np.float32(divisor)
    if binarize == "threshold":
        return (intensity > 0.5).astype(np.float32)
    return intensity


def _check_probabilities(x: np.ndarray, divisor: float, scale, binarize: str) -> None:
    """Raises a ValueError naming x and scale unless every x / divisor lies in [0, 1]:
    the probabilities of a Bernoulli draw (NaN is outside)."""
    if x.size == 0:
        return
    low, high = float(np.min(x)) / divisor, float(np.max(x)) / divisor  # divisor > 0
    if not (0.0 <= low and high <= 1.0):  # False for NaN too
        raise ValueError(
            f"Expected intensities x / scale in [0, 1] for binarize={binarize!r}: they are "
            f"the probabilities of the Bernoulli draws. Received: values in [{low:g}, "
            f"{high:g}] with scale={scale!r}"
            + ("; pass scale=255.0 for uint8 grey levels" if high > 1.0 else "")
        )


def _sample_bernoulli(x: np.ndarray, divisor: float, seed: int | None) -> np.ndarray:
    """Samples `Bernoulli(x / divisor)` once, elementwise, as uint8 zeros and ones."""
    rng = np.random.default_rng(seed)
    binary = np.empty(x.shape, dtype=np.uint8)
    for start in range(0, len(x), _STATIC_CHUNK):
        intensity = x[start : start + _STATIC_CHUNK].astype(np.float64) / divisor
        binary[start : start + _STATIC_CHUNK] = rng.random(intensity.shape) < intensity
    return binary
