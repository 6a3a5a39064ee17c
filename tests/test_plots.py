"""Image grids are checked pixel by pixel against layouts computed here."""

import numpy as np
import pytest
from PIL import Image

from tfvae import plots


def test_image_grid_places_each_image_in_its_cell():
    rng = np.random.default_rng(0)
    images = rng.random((5, 3, 4, 1))
    grid = plots.image_grid(images, columns=2, padding=1, zoom=2)
    # 3 rows of (2*3 + 1) pixels + 1; 2 columns of (2*4 + 1) + 1.
    assert grid.shape == (3 * 7 + 1, 2 * 9 + 1, 1)
    for index, image in enumerate(images):
        row, column = divmod(index, 2)
        top, left = 1 + 7 * row, 1 + 9 * column
        cell = grid[top : top + 6, left : left + 8, 0]
        expected = np.kron(np.round(image[..., 0] * 255), np.ones((2, 2)))
        np.testing.assert_array_equal(cell, expected)
    # Padding and the unused sixth cell stay black.
    assert grid[0].max() == 0 and grid[:, 0].max() == 0
    assert grid[15:21, 10:18].max() == 0


def test_image_grid_maps_the_data_range_and_clips():
    images = np.array([-4.0, 0.0, 8.0, 16.0, 40.0]).reshape(5, 1, 1, 1)
    grid = plots.image_grid(images, columns=5, data_range=(0.0, 16.0), padding=0)
    np.testing.assert_array_equal(grid[0, :, 0], [0, 0, 128, 255, 255])


def test_image_grid_defaults_to_a_square_and_keeps_rgb():
    grid = plots.image_grid(np.ones((10, 2, 2, 3)), padding=0)
    assert grid.shape == (3 * 2, 4 * 2, 3)


@pytest.mark.parametrize("shape", [(4, 4), (0, 4, 4, 1), (2, 4, 4, 2)])
def test_image_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="Expected images of shape"):
        plots.image_grid(np.zeros(shape))


def test_interleave_alternates_originals_and_reconstructions():
    a, b = np.zeros((3, 2, 2, 1)), np.ones((3, 2, 2, 1))
    pairs = plots.interleave(a, b)
    np.testing.assert_array_equal(pairs[:, 0, 0, 0], [0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="same shape"):
        plots.interleave(a, b[:2])


def test_save_png_round_trips_grey_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    for channels, mode in ((1, "L"), (3, "RGB")):
        grid = rng.integers(0, 256, size=(7, 9, channels), dtype=np.uint8)
        path = plots.save_png(tmp_path / f"{mode}.png", grid)
        with Image.open(path) as image:
            assert image.mode == mode
            np.testing.assert_array_equal(np.asarray(image).reshape(grid.shape), grid)
    with pytest.raises(ValueError, match="uint8"):
        plots.save_png(tmp_path / "bad.png", np.zeros((2, 2, 1), dtype=np.float32))


def test_log_log_chart_puts_each_point_where_its_logs_say():
    """Decades 1e0..1e2 on x and 1e-1..1e3 on y fill the plot area [80, 540] x [20, 350]
    of a 560 x 400 picture: a point's column is 80 + log10(x) / 2 * 460 and its row
    350 - (log10(y) + 1) / 4 * 330, rounded; its marker has its series' colour."""
    series = {"a": ([1, 10, 100], [1000, 10, 1]), "b": ([2, 30], [0.1, 5])}
    image, positions = plots.log_log_chart(series)
    assert image.shape == (400, 560, 3) and image.dtype == np.uint8
    for index, (label, (xs, ys)) in enumerate(series.items()):
        columns = np.rint(80 + np.log10(xs) / 2 * 460).astype(int)
        rows = np.rint(350 - (np.log10(ys) + 1) / 4 * 330).astype(int)
        np.testing.assert_array_equal(positions[label], np.stack([columns, rows], axis=1))
        for column, row in zip(columns, rows, strict=True):
            np.testing.assert_array_equal(image[row, column], plots.PALETTE[index])
            # The 7 x 7 marker, not a lone pixel.
            np.testing.assert_array_equal(image[row - 3, column + 3], plots.PALETTE[index])


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ({}, "at least one series"),
        ({"a": ([1, 2], [1, 0])}, "positive finite"),
        ({"a": ([1, 2], [1])}, "one length"),
    ],
)
def test_log_log_chart_refuses_what_it_cannot_draw(series, message):
    with pytest.raises(ValueError, match=message):
        plots.log_log_chart(series)
