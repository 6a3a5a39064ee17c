"""Paths between two latent vectors, in numpy: what an interpolation picture decodes.

`tfvae.latent.interpolate` (through a Keras model) and `tfvae.runtime.Sampler.interpolate`
(through the exported ONNX decoder) both decode `latent_path`. This module imports numpy
only.
"""

import math
import numbers

import numpy as np

from tfvae import validation

METHODS = ("linear", "spherical")

# Below this sine of the angle between two vectors, spherical interpolation falls back to
# linear: the vectors are (anti)parallel and the great circle through them is undefined.
_PARALLEL_SINE = 1e-6


def _linear_path(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (1.0 - t) * a + t * b  # [S, D]


def _spherical_path(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    if norm_a == 0.0 or norm_b == 0.0:
        return _linear_path(a, b, t)
    u, v = a / norm_a, b / norm_b
    angle = 2.0 * math.atan2(np.linalg.norm(u - v), np.linalg.norm(u + v))  # stable arccos
    if math.sin(angle) < _PARALLEL_SINE:
        return _linear_path(a, b, t)
    direction = (np.sin((1.0 - t) * angle) * u + np.sin(t * angle) * v) / math.sin(angle)
    return ((1.0 - t) * norm_a + t * norm_b) * direction  # [S, D]


_PATHS = {"linear": _linear_path, "spherical": _spherical_path}


def latent_path(a, b, steps: int = 8, method: str = "linear") -> np.ndarray:
    """`steps` evenly spaced points on a path from latent vector `a` to `b`.

    Mathematical details: with t_s = s / (steps - 1), `"linear"` gives
    z_s = (1 - t_s) a + t_s b. `"spherical"` rotates the direction uniformly along the
    great circle and interpolates the length linearly:
    z_s = ((1 - t_s) |a| + t_s |b|) (sin((1 - t_s) w) u + sin(t_s w) v) / sin(w), with
    u = a / |a|, v = b / |b| and w the angle between them; so z_s makes the angle t_s w
    with `a`, and with |a| = |b| this is Shoemake's slerp. When a or b is zero or they are
    (anti)parallel (sin w < 1e-6) the spherical path is the linear one.

    Args:
        a: the start, `(latent_dim,)`.
        b: the end, `(latent_dim,)`.
        steps: number of points, an integer >= 2.
        method: `"linear"` or `"spherical"`.

    Returns:
        float64 `(steps, latent_dim)`; the first row is exactly `a`, the last exactly `b`.

    Raises:
        ValueError: for vectors of different or non-vector shapes, non-finite values,
            `steps` < 2 or an unknown `method`.

    Example:
        >>> latent_path([1.0, 0.0], [0.0, 2.0], steps=3, method="spherical")[1]
        array([1.06066017, 1.06066017])
    """
    validation.one_of(method, METHODS, "method")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
        raise ValueError(f"Expected steps to be an integer >= 2. Received: steps={steps!r}")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(
            "Expected a and b of the same shape (latent_dim,). "
            f"Received: a.shape={a.shape}, b.shape={b.shape}"
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError(f"Expected finite a and b. Received: a={a}, b={b}")
    t = np.linspace(0.0, 1.0, int(steps))[:, None]  # [S, 1]
    path = _PATHS[method](a, b, t)
    path[0], path[-1] = a, b
    return path
