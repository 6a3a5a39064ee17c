"""The floating dtype of log-probabilities.

Log-probabilities are computed in float32 even when the networks compute in float16 or
bfloat16 (mixed precision), and in float64 when the networks compute in float64 (as the
finite-difference gradient tests do). Every cast to "the log-probability dtype" in the
probability families and the model goes through this module.
"""

from tfvae._lazy import tf


def log_prob_dtype(dtype):
    """float64 for float64, float32 for every other dtype (half precision, integers).

    Args:
        dtype: a dtype or its name, e.g. a layer's `compute_dtype`.

    Returns:
        `tf.float64` or `tf.float32`.

    Example:
        >>> log_prob_dtype("float16"), log_prob_dtype("float64")
        (tf.float32, tf.float64)
    """
    return tf.float64 if tf.as_dtype(dtype) == tf.float64 else tf.float32


def at_least_float32(value):
    """`value` as a tensor in its log-probability dtype: float64 kept, the rest float32."""
    value = tf.convert_to_tensor(value)
    return tf.cast(value, log_prob_dtype(value.dtype))
