"""Stateless noise that is the same with and without XLA.

TensorFlow's stateless Philox generator produces identical *bits* on its own kernels and
under XLA, but the two turn those bits into normal variates differently (on CPU the
results differ by O(1)), so a step compiled with `jit_compile=True` would not see the same
noise as the same step run without it. We therefore take the raw Philox bits and apply
the inverse normal CDF ourselves, in float64 so that both paths agree to float32 rounding.
The noise tensors of a VAE step are small ([num_samples, batch_size, latent_dim]), so the
float64 transform costs nothing measurable, also on a GPU.
"""

import numbers

import tensorflow as tf

_BITS = 32


def standard_normal(shape, seed, dtype=tf.float32) -> tf.Tensor:
    """Draws N(0, 1) noise from a stateless seed.

    Args:
        shape: the output shape, a list or 1-D integer tensor.
        seed: integer tensor of shape `(2,)` (e.g. `keras.random.SeedGenerator.next()`).
        dtype: floating dtype of the result.

    Returns:
        A tensor of `shape` whose entries are independent standard normal draws, a
        deterministic function of `seed`, identical (to float rounding) with and without
        XLA compilation.
    """
    bits = tf.random.stateless_uniform(
        shape, seed=seed, minval=None, maxval=None, dtype=tf.uint32, alg="philox"
    )
    # Uniform on the open interval (0, 1): (k + 1/2) / 2^32 is exact in float64.
    uniform = (tf.cast(bits, tf.float64) + 0.5) * (2.0**-_BITS)
    return tf.cast(tf.math.ndtri(uniform), dtype)


def split(seed, num: int = 2) -> list[tf.Tensor]:
    """Splits a stateless seed of shape `(2,)` into `num` independent seeds."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, num=num))


def as_seed(seed, argument: str = "seed") -> tf.Tensor:
    """Turns an integer or a `(2,)` integer tensor into a `(2,)` int64 stateless seed.

    Raises:
        ValueError: for anything else; the message names `argument`.
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and abs(seed) < 2**63:
        return tf.constant([int(seed), 0], dtype=tf.int64)
    try:
        tensor = tf.convert_to_tensor(seed)
    except (TypeError, ValueError):
        tensor = None
    if tensor is None or not tensor.dtype.is_integer or tensor.shape != (2,):
        raise ValueError(
            f"Expected {argument} to be an integer or a (2,) integer tensor. "
            f"Received: {argument}={seed!r}"
        )
    return tf.cast(tensor, tf.int64)
