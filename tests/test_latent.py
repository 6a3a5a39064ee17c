"""Latent-space pictures against closed forms, scipy's normal quantiles and pixel layouts."""

import numpy as np
import pytest
from scipy import stats

import tfvae
from tfvae import latent, plots

WHITE = (255, 255, 255)


def _vae(latent_dim=2, prior="standard_normal"):
    vae = tfvae.VAE(
        tfvae.networks.mlp_encoder((8,), seed=1),
        tfvae.networks.mlp_decoder((8,), seed=2),
        latent_dim=latent_dim,
        prior=prior,
        seed=0,
    )
    vae.build((None, 8, 8, 1))
    return vae


@pytest.fixture(scope="module")
def vae():
    return _vae()


@pytest.fixture(scope="module")
def x():
    return (np.random.default_rng(0).random((12, 8, 8, 1)) < 0.3).astype("float32")


# ---------------------------------------------------------------------------------------
# interpolate: decoded paths between posterior means.
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", latent.METHODS)
def test_interpolate_runs_between_the_two_reconstructions(vae, x, method):
    images = latent.interpolate(vae, x[0], x[1], steps=6, method=method)
    assert images.shape == (6, 8, 8, 1)
    reconstructions = np.asarray(vae(x[:2]))  # E[x | z = posterior mean]
    np.testing.assert_allclose(images[0], reconstructions[0], atol=1e-6)
    np.testing.assert_allclose(images[-1], reconstructions[1], atol=1e-6)
    means = np.asarray(vae.encode(x[:2]).mean(), dtype=np.float64)
    z = latent.latent_path(means[0], means[1], steps=6, method=method)
    expected = np.asarray(vae.decode(z.astype("float32")).mean())
    np.testing.assert_allclose(images, expected, atol=1e-6)


def test_interpolate_checks_the_data_shape(vae, x):
    with pytest.raises(ValueError, match=r"data shape \(8, 8, 1\)\. Received: shapes \(8, 8\)"):
        latent.interpolate(vae, x[0, ..., 0], x[1, ..., 0])


# ---------------------------------------------------------------------------------------
# manifold: normal quantiles on a grid, z_1 to the right and z_2 upwards.
# ---------------------------------------------------------------------------------------
def test_manifold_latents_are_scipys_normal_quantiles():
    z = latent.manifold_latents(grid=7, margin=0.05)
    q = stats.norm.ppf(np.linspace(0.05, 0.95, 7))
    assert z.shape == (7, 7, 2)
    for i in range(7):
        for j in range(7):
            np.testing.assert_allclose(z[i, j], [q[j], q[6 - i]], rtol=0, atol=1e-12)
    np.testing.assert_allclose(z[3, 3], [0.0, 0.0], atol=1e-12)  # the centre cell


def test_manifold_decodes_each_grid_cell(vae):
    cells = latent.manifold(vae, grid=5, margin=0.1)
    assert cells.shape == (5, 5, 8, 8, 1)
    q = stats.norm.ppf(np.linspace(0.1, 0.9, 5))
    # The centre row has z_2 = 0 and z_1 = q; the centre column z_1 = 0 and z_2 = q[::-1].
    row = np.stack([q, np.zeros(5)], axis=1).astype("float32")
    column = np.stack([np.zeros(5), q[::-1]], axis=1).astype("float32")
    np.testing.assert_allclose(cells[2], np.asarray(vae.decode(row).mean()), atol=1e-6)
    np.testing.assert_allclose(cells[:, 2], np.asarray(vae.decode(column).mean()), atol=1e-6)
    corner = np.array([[q[0], q[-1]]], dtype="float32")  # top left: lowest z_1, highest z_2
    np.testing.assert_allclose(cells[0, 0], np.asarray(vae.decode(corner).mean())[0], atol=1e-6)


def test_manifold_needs_a_two_dimensional_standard_normal_latent():
    with pytest.raises(ValueError, match=r"latent_dim=2 .*Received: latent_dim=3, prior='standard"):
        latent.manifold(_vae(latent_dim=3))
    with pytest.raises(ValueError, match=r"Received: latent_dim=2, prior='mixture'"):
        latent.manifold(_vae(prior="mixture"))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"grid": 1}, "grid to be an integer >= 2"), ({"margin": 0.0}, r"margin.*\(0, 0\.5\)")],
)
def test_manifold_latents_reject_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        latent.manifold_latents(**kwargs)


# ---------------------------------------------------------------------------------------
# scatter_image and latent_scatter: squares of palette colours at computed pixels.
# ---------------------------------------------------------------------------------------
def _non_white(image):
    return np.any(image != 255, axis=-1)


def test_scatter_image_puts_each_label_colour_at_its_pixel():
    # size 64, margin 0.1: a border of round(6.4) = 6 pixels, a span of 64 - 1 - 12 = 51.
    points = np.array([[0.0, 0.0], [51.0, 51.0], [17.0, 34.0]])
    labels = np.array([3, 7, 15])  # 15 is drawn in colour 5
    image = latent.scatter_image(points, labels, size=64, margin=0.1, marker=3)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    # (row, column) of each centre: p_1 to the right, p_2 upwards.
    centres = [(57, 6), (6, 57), (57 - 34, 6 + 17)]
    expected = np.full((64, 64, 3), 255, dtype=np.uint8)
    for (row, column), colour in zip(centres, (3, 7, 5), strict=True):
        np.testing.assert_array_equal(
            image[row - 1 : row + 2, column - 1 : column + 2],
            np.broadcast_to(plots.PALETTE[colour], (3, 3, 3)),
        )
        expected[row - 1 : row + 2, column - 1 : column + 2] = plots.PALETTE[colour]
    np.testing.assert_array_equal(image, expected)  # everything else is white
    assert _non_white(image).sum() == 3 * 9


def test_scatter_image_draws_later_points_over_earlier_ones():
    points = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    image = latent.scatter_image(points, np.array([1, 2, 4]), size=32, margin=0.0, marker=1)
    np.testing.assert_array_equal(image[31, 0], plots.PALETTE[4])
    np.testing.assert_array_equal(image[0, 31], plots.PALETTE[2])
    assert _non_white(image).sum() == 2


def test_scatter_image_centres_a_coordinate_without_spread():
    image = latent.scatter_image([[2.0, 5.0]], [0], size=33, margin=0.0, marker=1)
    assert np.flatnonzero(_non_white(image).ravel()).tolist() == [16 * 33 + 16]


def test_palette_has_ten_distinct_colours_none_white():
    assert plots.PALETTE.shape == (10, 3) and plots.PALETTE.dtype == np.uint8
    assert len({tuple(colour) for colour in plots.PALETTE}) == 10
    assert WHITE not in {tuple(colour) for colour in plots.PALETTE}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels": [0.5, 1.5]}, "integer labels of shape"),
        ({"labels": [0]}, r"integer labels of shape \(2,\)"),
        ({"points": [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0]]}, r"points of shape \(num_points >= 1, 2\)"),
        ({"marker": 2}, "odd"),
        ({"size": 3}, r"Expected size > 3 .*Received: size=3"),
    ],
)
def test_scatter_image_rejects_bad_arguments(kwargs, match):
    arguments = {"points": [[0.0, 1.0], [1.0, 0.0]], "labels": [0, 1], "size": 64, **kwargs}
    with pytest.raises(ValueError, match=match):
        latent.scatter_image(**arguments)


def test_latent_scatter_draws_the_posterior_means(vae, x):
    labels = np.arange(len(x)) % 4
    image = latent.latent_scatter(vae, x, labels, size=100, margin=0.05, batch_size=5)
    assert image.shape == (100, 100, 3) and image.dtype == np.uint8
    means = np.asarray(vae.encode(x).mean(), dtype=np.float64)
    np.testing.assert_array_equal(image, latent.scatter_image(means, labels, size=100))
    # The last point is drawn last: its square has its label's colour at the pixel
    # computed here (border 5, span 89).
    low, high = means.min(axis=0), means.max(axis=0)
    column = 5 + int(np.rint((means[-1, 0] - low[0]) / (high[0] - low[0]) * 89))
    row = 5 + int(np.rint((high[1] - means[-1, 1]) / (high[1] - low[1]) * 89))
    np.testing.assert_array_equal(
        image[row - 1 : row + 2, column - 1 : column + 2],
        np.broadcast_to(plots.PALETTE[labels[-1]], (3, 3, 3)),
    )
    assert image[0, 0].tolist() == list(WHITE)


def test_latent_scatter_shows_the_first_two_of_more_dimensions(x):
    vae = _vae(latent_dim=3)
    labels = np.zeros(len(x), dtype=np.int64)
    means = np.asarray(vae.encode(x).mean())
    np.testing.assert_array_equal(
        latent.latent_scatter(vae, x, labels), latent.scatter_image(means[:, :2], labels)
    )


def test_latent_scatter_needs_two_latent_dimensions(x):
    with pytest.raises(ValueError, match=r"latent_dim >= 2 .*Received: latent_dim=1"):
        latent.latent_scatter(_vae(latent_dim=1), x, np.zeros(len(x), dtype=np.int64))
