"""Stateless seeds and noise: the same noise with and without XLA.

    - `standard_normal`, `split`: stateless noise from a `(2,)` seed.
    - `as_seed`: a user's seed (an integer in [0, `tfvae.validation.MAX_SEED`] or a
      `(2,)` tensor) as a stateless seed.
    - `save_states`, `load_states`: a model's `keras.random.SeedGenerator` states in its
      saved variables, so that a reloaded model continues its random streams.

TensorFlow's stateless Philox generator produces identical *bits* on its own kernels and
under XLA, but the two turn those bits into normal variates differently (on CPU the
results differ by O(1)), so a step compiled with `jit_compile=True` would not see the same
noise as the same step run without it. We therefore take the raw Philox bits and apply
the inverse normal CDF ourselves, in float64 so that both paths agree to float32 rounding.
The noise tensors of a VAE step are small ([num_samples, batch_size, latent_dim]), so the
float64 transform costs nothing measurable, also on a GPU.
"""

import numbers

import tfvae._backend  # noqa: F401

import tensorflow as tf

from tfvae import validation

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
    """Turns an integer seed or a `(2,)` stateless seed into a `(2,)` int64 stateless seed.

    Args:
        seed: an integer in [0, `tfvae.validation.MAX_SEED`], the one range of integer
            seeds in tfvae, or a `(2,)` integer tensor (any values: a stream's state,
            e.g. `keras.random.SeedGenerator.next()`).
        argument: the caller's name for `seed`, for the message.

    Raises:
        ValueError: for anything else; the message names `argument`.
    """
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if not validation.is_seed(seed):
            raise validation.seed_error(seed, argument, _PAIR)
        return tf.constant([int(seed), 0], dtype=tf.int64)
    try:
        tensor = tf.convert_to_tensor(seed)
    except (TypeError, ValueError):
        tensor = None
    if tensor is None or not tensor.dtype.is_integer or tensor.shape != (2,):
        raise validation.seed_error(seed, argument, _PAIR)
    return tf.cast(tensor, tf.int64)


_PAIR = "a (2,) integer tensor"


# ------------------------------------------------------------- the streams' states


def save_states(store, generators: dict) -> None:
    """Writes each `keras.random.SeedGenerator`'s state into a Keras variable store.

    Args:
        store: the dict-like store of `Layer.save_own_variables`.
        generators: `{key: generator}`; each state is saved under its key.
    """
    for key, generator in generators.items():
        store[key] = generator.state


def load_states(store, generators: dict) -> dict:
    """Restores the states `save_states` wrote; returns the store's other entries.

    A key missing from `store` (a file written before the states were saved) leaves its
    generator as it is.

    Args:
        store: the dict-like store of `Layer.load_own_variables`.
        generators: `{key: generator}`, as given to `save_states`.

    Returns:
        A dict of the entries of `store` that are not seed states, for the caller's own
        variables.
    """
    saved = set(store.keys())
    for key, generator in generators.items():
        if key in saved:
            generator.state.assign(store[key])
    return {key: store[key] for key in saved - set(generators)}
