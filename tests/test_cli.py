"""The command line on the embedded digits: files written, pixels, errors, atomicity."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfvae import cli, data, likelihoods, workflow

ZOOM = 7  # plots.default_zoom(8): 8x8 digits are drawn at 56x56.


def _png(path):
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    argv = ["train", "--epochs", "3", "--hidden", "32", "--latent-dim", "2", "--out", str(out)]
    assert cli.main(argv) == 0
    return out


def test_likelihood_choices_match_the_registry():
    assert list(cli.LIKELIHOOD_NAMES) == likelihoods.registry.names()


def test_train_writes_the_documented_files(trained):
    names = sorted(p.name for p in trained.iterdir())
    assert names == [
        "config.json",
        "history.json",
        "model.keras",
        "reconstructions.png",
        "samples.png",
    ]
    run = json.loads((trained / "config.json").read_text())
    assert run["config"]["likelihood"] == "binomial"
    assert run["config"]["jit_compile"] is True
    assert run["config"]["hidden"] == [32] and run["config"]["latent_dim"] == 2
    assert run["recipe"]["total_count"] == 16
    history = json.loads((trained / "history.json").read_text())
    assert set(history) >= {"loss", "elbo", "reconstruction", "kl", "val_elbo"}
    assert all(len(values) == 3 for values in history.values())
    assert history["elbo"][-1] > history["elbo"][0]


def test_reconstructions_png_shows_the_test_images_beside_reconstructions(trained):
    grid = _png(trained / "reconstructions.png")
    x_test, _ = data.load("digits", split="test")
    cell = ZOOM * 8 + ZOOM  # image plus padding
    # 32 pairs in rows of 8 cells (4 pairs): 8 rows.
    assert grid.shape == (8 * cell + ZOOM, 8 * cell + ZOOM)
    model, recipe, _ = workflow.load(trained)
    reconstructions = model.predict(x_test[:32].astype("float32"), verbose=0)
    for index in range(32):
        row, pair = divmod(index, 4)
        top = ZOOM + row * cell
        for offset, image in ((0, x_test[index]), (1, reconstructions[index])):
            left = ZOOM + (2 * pair + offset) * cell
            shown = grid[top : top + 8 * ZOOM : ZOOM, left : left + 8 * ZOOM : ZOOM]
            expected = np.round(np.clip(image[..., 0] / 16.0, 0, 1) * 255)
            np.testing.assert_allclose(shown, expected, atol=1)


def test_sample_writes_a_seeded_grid_of_draws(trained, tmp_path):
    paths = [tmp_path / name for name in ("a.png", "b.png", "c.png")]
    for path, seed in zip(paths, (1, 1, 2), strict=True):
        argv = ["sample", str(trained), "-n", "16", "--seed", str(seed), "--out", str(path)]
        assert cli.main(argv) == 0
    a, b, c = (_png(path) for path in paths)
    cell = ZOOM * 8 + ZOOM
    assert a.shape == (4 * cell + ZOOM, 4 * cell + ZOOM)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Draws from a binomial with 16 trials: grey levels are multiples of 255/16.
    levels = np.unique(a[ZOOM : ZOOM + 8 * ZOOM, ZOOM : ZOOM + 8 * ZOOM])
    np.testing.assert_allclose(levels, np.round(np.round(levels / (255 / 16)) * 255 / 16))


def test_evaluate_prints_per_example_nats(trained, capsys):
    assert cli.main(["evaluate", str(trained)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 297
    assert result["elbo"] == pytest.approx(result["reconstruction"] - result["kl"], abs=1e-3)
    assert result["loss"] == pytest.approx(-result["elbo"], abs=1e-4)
    assert result["kl"] > 0


def test_a_failed_train_leaves_the_previous_run_intact(trained, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_bytes(b"previous model")

    def broken(*args, **kwargs):
        raise OSError("disk full while drawing (test)")

    monkeypatch.setattr(workflow, "write_samples", broken)
    argv = ["train", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--out", str(out)]
    assert cli.main(argv) == 1
    assert [p.name for p in out.iterdir()] == ["model.keras"]
    assert (out / "model.keras").read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--epochs", "0"], "Expected epochs to be a positive integer"),
        (["evaluate", "no/such/folder"], "Expected a model folder written by 'tfvae train'"),
        (["sample", "no/such/folder"], "Expected a model folder"),
    ],
)
def test_errors_are_one_line_with_exit_code_1(argv, message, capsys):
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err


def test_bad_hidden_sizes_are_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--hidden", "500,a"])
    assert exit_info.value.code == 2
    assert "comma-separated positive layer widths" in capsys.readouterr().err


def test_help_does_not_import_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from tfvae import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['train', '--help'])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
