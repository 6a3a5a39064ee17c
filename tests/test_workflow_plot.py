"""`workflow.plot` on a model trained on the digits: documented PNG sizes and pixels."""

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from tfvae import data, plots, workflow

ZOOM = 7  # plots.default_zoom(8): 8x8 digits are drawn at 56x56.
CELL = ZOOM * 8 + ZOOM  # an image and its padding
DATA_RANGE = 16.0  # the digits recipe shows 0..16 counts as black..white


def _png(path):
    with Image.open(path) as image:
        return np.asarray(image)


def _grid_size(rows, columns):
    return (rows * CELL + ZOOM, columns * CELL + ZOOM)


def _cell(grid, row, column):
    """The 8x8 image shown in cell (row, column), one pixel per zoomed block."""
    top, left = ZOOM + row * CELL, ZOOM + column * CELL
    return grid[top : top + 8 * ZOOM : ZOOM, left : left + 8 * ZOOM : ZOOM]


def _grey(image):
    """Counts 0..16 of an 8x8x1 image as the grey levels written."""
    return np.round(np.clip(np.asarray(image)[..., 0] / DATA_RANGE, 0, 1) * 255)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plot") / "m"
    config = workflow.TrainConfig(  # XLA's compiles would cost more than these plots run
        epochs=2, hidden=(16,), latent_dim=2, out=str(folder), jit_compile="off"
    )
    return workflow.train(config, verbose=0)


@pytest.fixture(scope="module")
def model(model_dir):
    return workflow.load(model_dir)[0]


@pytest.fixture(scope="module")
def test_split():
    x, y = data.load("digits", split="test")
    return x.astype("float32"), y  # the digits recipe neither scales nor binarizes


@pytest.mark.slow
def test_samples_are_prior_means_in_a_square_grid(model_dir, model, tmp_path):
    out = workflow.plot(model_dir, "samples", tmp_path / "s.png", n=10, seed=3)
    grid = _png(out)
    assert grid.shape == _grid_size(3, 4)  # ceil(sqrt(10)) = 4 columns, 3 rows
    samples = np.asarray(model.sample(10, seed=3, mean=True))
    for index in (0, 9):
        np.testing.assert_allclose(_cell(grid, *divmod(index, 4)), _grey(samples[index]), atol=1)
    assert _cell(grid, 2, 3).max() == 0  # the unused cells stay black


def test_reconstructions_pair_the_first_images_with_their_means(
    model_dir, model, test_split, tmp_path
):
    grid = _png(workflow.plot(model_dir, "reconstructions", tmp_path / "r.png", n=5))
    assert grid.shape == _grid_size(2, 8)  # 10 images in rows of 8
    x, _ = test_split
    reconstructions = np.asarray(model(x[:5]))
    for index in range(5):
        row, pair = divmod(index, 4)
        np.testing.assert_allclose(_cell(grid, row, 2 * pair), _grey(x[index]), atol=0)
        np.testing.assert_allclose(
            _cell(grid, row, 2 * pair + 1), _grey(reconstructions[index]), atol=1
        )


def test_interpolation_rows_are_linear_then_spherical(model_dir, model, test_split, tmp_path):
    grid = _png(workflow.plot(model_dir, "interpolation", tmp_path / "i.png", steps=5))
    assert grid.shape == _grid_size(2, 5)
    x, y = test_split
    second = int(np.flatnonzero(y != y[0])[0])  # the first image of another label
    a, b = np.asarray(model.encode(x[[0, second]]).mean(), dtype=np.float64)
    # Midpoints: the mean, and the bisector of the angle at the mean length.
    bisector = a / np.linalg.norm(a) + b / np.linalg.norm(b)
    middle = {
        0: (a + b) / 2,
        1: (np.linalg.norm(a) + np.linalg.norm(b)) / 2 * bisector / np.linalg.norm(bisector),
    }
    ends = np.asarray(model(x[[0, second]]))
    for row in (0, 1):
        decoded = np.asarray(model.decode(middle[row][None].astype("float32")).mean())[0]
        np.testing.assert_allclose(_cell(grid, row, 2), _grey(decoded), atol=1)
        np.testing.assert_allclose(_cell(grid, row, 0), _grey(ends[0]), atol=1)
        np.testing.assert_allclose(_cell(grid, row, 4), _grey(ends[1]), atol=1)


def test_manifold_cells_decode_normal_quantiles(model_dir, model, tmp_path):
    grid = _png(workflow.plot(model_dir, "manifold", tmp_path / "m.png", grid=4))
    assert grid.shape == _grid_size(4, 4)
    q = stats.norm.ppf(np.linspace(0.05, 0.95, 4))
    # Cell (0, 0) is top left: the lowest z_1 and the highest z_2; (3, 1) the reverse in z_2.
    for (row, column), z in (((0, 0), (q[0], q[3])), ((3, 1), (q[1], q[0]))):
        decoded = np.asarray(model.decode(np.array([z], dtype="float32")).mean())[0]
        np.testing.assert_allclose(_cell(grid, row, column), _grey(decoded), atol=1)


def test_latent_scatter_shows_every_label_in_its_colour(model_dir, test_split, tmp_path):
    image = _png(workflow.plot(model_dir, "latent-scatter", tmp_path / "z.png"))
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    _, y = test_split
    colours = {tuple(pixel) for pixel in image.reshape(-1, 3)} - {(255, 255, 255)}
    assert colours == {tuple(plots.PALETTE[label % 10]) for label in np.unique(y)}
    assert len(colours) == len(np.unique(y)) == 10
    # The 5% margin (13 pixels) is blank, less the 1-pixel half marker.
    assert (image[:12] == 255).all() and (image[:, -12:] == 255).all()


def test_plot_rejects_an_unknown_kind_before_loading(tmp_path):
    with pytest.raises(ValueError, match=r"kind to be one of \['samples', .*'latent-scatter'\]"):
        workflow.plot(tmp_path / "absent", "histogram", tmp_path / "h.png")
    with pytest.raises(FileNotFoundError, match="model folder"):
        workflow.plot(tmp_path / "absent", "manifold", tmp_path / "h.png")
