"""Latent paths against closed forms: the convex combination, a uniform rotation, slerp."""

import numpy as np
import pytest

from tfvae import interpolation


# ---------------------------------------------------------------------------------------
# latent_path: linear and spherical paths against closed forms.
# ---------------------------------------------------------------------------------------
def test_linear_path_is_the_convex_combination(rng):
    a, b = rng.normal(size=5), rng.normal(size=5)
    path = interpolation.latent_path(a, b, steps=7, method="linear")
    t = np.arange(7) / 6
    np.testing.assert_allclose(path, a + np.outer(t, b - a), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)


def test_spherical_path_rotates_uniformly_and_interpolates_the_length(rng):
    a, b = rng.normal(size=5), 3.0 * rng.normal(size=5)
    path = interpolation.latent_path(a, b, steps=9, method="spherical")
    t = np.arange(9)[:, None] / 8
    # Reference: rotation in the plane of a and b, from u towards the unit vector w
    # orthogonal to u, by t times the angle between a and b.
    u, v = a / np.linalg.norm(a), b / np.linalg.norm(b)
    angle = np.arccos(u @ v)
    w = (v - (u @ v) * u) / np.linalg.norm(v - (u @ v) * u)
    length = (1 - t) * np.linalg.norm(a) + t * np.linalg.norm(b)
    np.testing.assert_allclose(
        path, length * (np.cos(t * angle) * u + np.sin(t * angle) * w), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), length[:, 0], rtol=1e-12)
    angles = np.arccos(np.clip(path @ u / np.linalg.norm(path, axis=1), -1, 1))
    np.testing.assert_allclose(np.diff(angles), angle / 8, atol=1e-7)
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)


def test_spherical_path_of_equal_lengths_is_shoemakes_slerp(rng):
    a = rng.normal(size=4)
    b = rng.normal(size=4)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    path = interpolation.latent_path(a, b, steps=5, method="spherical")
    angle = np.arccos(a @ b / (a @ a))
    t = np.linspace(0, 1, 5)[:, None]
    slerp = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.sin(angle)
    np.testing.assert_allclose(path, slerp, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-12)


@pytest.mark.parametrize(
    "a, b",
    [
        ([1.0, 2.0, -1.0], [2.0, 4.0, -2.0]),  # parallel
        ([1.0, 2.0, -1.0], [-0.5, -1.0, 0.5]),  # antiparallel
        ([0.0, 0.0, 0.0], [1.0, -3.0, 2.0]),  # a zero vector
    ],
)
def test_spherical_path_of_parallel_vectors_is_linear(a, b):
    np.testing.assert_allclose(
        interpolation.latent_path(a, b, steps=6, method="spherical"),
        interpolation.latent_path(a, b, steps=6, method="linear"),
        atol=1e-12,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 1}, r"steps to be an integer >= 2\. Received: steps=1"),
        ({"steps": 2.0}, "steps to be an integer"),
        ({"method": "cubic"}, r"method to be one of \['linear', 'spherical'\]"),
        ({"b": [1.0, 2.0, 3.0]}, r"same shape \(latent_dim,\).*b.shape=\(3,\)"),
        ({"b": [1.0, np.nan]}, "finite"),
    ],
)
def test_latent_path_rejects_bad_arguments(kwargs, match):
    arguments = {"a": [0.5, 1.0], "b": [1.0, 0.0], **kwargs}
    with pytest.raises(ValueError, match=match):
        interpolation.latent_path(**arguments)
