"""The command line on the embedded digits: files written, pixels, errors, atomicity."""

import argparse
import csv
import errno
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import tree_snapshot, user_files
from tfvae import (
    cli,
    config,
    data,
    inference,
    plots,
    schedules,
    semi_supervised,
    validation,
    workflow,
)

ZOOM = 7  # plots.default_zoom(8): 8x8 digits are drawn at 56x56.


def _png(path):
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory for the module: default outputs land in its saved_models/."""
    folder = tmp_path_factory.mktemp("work")
    previous = os.getcwd()
    os.chdir(folder)
    yield folder
    os.chdir(previous)


@pytest.fixture(scope="module")
def trained(workdir):
    """`tfvae train --export` with default paths: the README's main job, made short."""
    argv = ["train", "--epochs", "3", "--hidden", "32", "--latent-dim", "2", "--export"]
    argv += ["--xla", "off"]  # the inference commands' XLA compiles cost more than they run
    assert cli.main(argv) == 0
    return workdir / "saved_models" / "digits"


def _choices(command, dest):
    """The choices the parser of `tfvae COMMAND` accepts for `dest`."""
    parser = cli.build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    (action,) = (a for a in commands.choices[command]._actions if a.dest == dest)
    return list(action.choices)


def test_choices_of_the_other_commands_are_what_the_library_accepts():
    assert _choices("plot", "kind") == list(workflow.PLOT_KINDS)
    assert _choices("impute", "mask") == list(workflow.MASKS)
    assert _choices("impute", "method") == list(inference.IMPUTATION_METHODS)
    for command in ("evaluate", "plot", "impute"):
        assert _choices(command, "split") == ["train", "test"]  # tfvae.data's splits
    # One declaration each, in a module without TensorFlow.
    assert inference.IMPUTATION_METHODS is config.IMPUTATION_METHODS
    assert workflow.PLOT_KINDS is config.PLOT_KINDS and workflow.MASKS is config.MASKS


@pytest.mark.slow
def test_train_writes_the_documented_files(trained):
    names = sorted(p.name for p in trained.iterdir())
    assert names == [
        "1",  # the SavedModel, version 1, from --export
        "config.json",
        "history.json",
        "model.keras",
        "onnxruntime_samples.png",
        "reconstructions.png",
        "samples.png",
    ]
    assert (trained / "1" / "saved_model.pb").is_file()
    bundle = trained.parent.parent / "export" / "digits"
    assert sorted(p.name for p in bundle.iterdir()) == [
        "decoder.onnx",
        "encoder.onnx",
        "manifest.json",
        "manifest.sha256",
    ]
    run = json.loads((trained / "config.json").read_text())
    assert run["config"]["likelihood"] == "binomial"
    assert run["config"]["jit_compile"] == "off"
    assert run["config"]["hidden"] == [32] and run["config"]["latent_dim"] == 2
    assert run["recipe"]["likelihood_config"] == {"total_count": 16}
    history = json.loads((trained / "history.json").read_text())
    latent = history.pop("latent")  # the diagnostics of every epoch
    assert set(history) >= {"loss", "elbo", "reconstruction", "kl", "val_elbo", "active_units"}
    assert all(len(values) == 3 for values in history.values())
    assert latent["epoch"] == [0, 1, 2] and len(latent["kl_per_dimension"][-1]) == 2
    assert history["elbo"][-1] > history["elbo"][0]


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_evaluate_prints_per_example_nats(trained, capsys):
    assert cli.main(["evaluate", str(trained)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == 297
    assert result["elbo"] == pytest.approx(result["reconstruction"] - result["kl"], abs=1e-3)
    assert result["kl"] > 0
    assert sum(result["kl_per_dimension"]) == pytest.approx(result["kl"], rel=1e-4)
    active = [d for d, v in enumerate(result["posterior_mean_variance"]) if v > 0.01]
    assert result["active_dimensions"] == active and result["active_units"] == len(active)


@pytest.mark.slow
def test_evaluate_estimates_the_nll_and_the_amortization_gap(trained, capsys):
    argv = ["evaluate", str(trained), "--num-samples", "50", "--refine-steps", "5"]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nll"] < -result["elbo"]  # the importance-weighted bound is tighter
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (64 * np.log(2)), rel=1e-6)
    assert result["amortization_gap"] >= 0
    assert result["elbo_refined"] == pytest.approx(
        result["elbo"] + result["amortization_gap"], abs=1.0
    )


def test_a_failed_train_leaves_the_previous_run_intact(trained, tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_bytes(b"previous model")

    def broken(model, recipe, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device (test)", str(path))

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
        (["evaluate", "x", "--refine-steps", "0"], "Expected refine_steps to be a positive"),
        (["gradients", "no/such/folder"], "Expected a model folder"),
        (["gradients", "x", "--batch-size", "0"], "Expected batch_size to be a positive"),
        (
            ["train", "--gradient-estimator", "dreg"],
            "Expected objective='iwae' with gradient_estimator='dreg'",
        ),
    ],
)
def test_errors_are_one_line_with_exit_code_1(argv, message, capsys):
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err


def test_bad_hidden_sizes_are_an_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--hidden", "500,a"])
    assert exit_info.value.code == 2
    assert "argument --hidden: expected comma-separated integers" in capsys.readouterr().err
    assert cli.main(["train", "--hidden", "500,0"]) == 1
    assert "Expected hidden to be a sequence of positive layer widths" in capsys.readouterr().err


def test_help_does_not_import_tensorflow():
    code = (
        "import sys, contextlib, io\n"
        "from tfvae import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['train', '--help'])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _is_binomial_draw_grid(grid):
    """Grey levels of draws from a binomial with 16 trials are multiples of 255/16."""
    levels = np.unique(grid)
    return np.allclose(levels, np.round(np.round(levels / (255 / 16)) * 255 / 16))


def test_train_export_drew_samples_with_onnxruntime(trained):
    grid = _png(trained / "onnxruntime_samples.png")
    cell = ZOOM * 8 + ZOOM
    assert grid.shape == (8 * cell + ZOOM, 8 * cell + ZOOM)
    assert _is_binomial_draw_grid(grid) and grid.std() > 10


def test_sample_from_a_bundle_never_imports_tensorflow(trained, tmp_path):
    bundle = trained.parent.parent / "export" / "digits"
    out = tmp_path / "bundle.png"
    code = (
        "import sys\n"
        "from tfvae import cli\n"
        f"code = cli.main(['sample', '--bundle', {str(bundle)!r}, '-n', '9', '--seed', '4',"
        f" '--out', {str(out)!r}])\n"
        "assert code == 0\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    grid = _png(out)
    cell = ZOOM * 8 + ZOOM
    assert grid.shape == (3 * cell + ZOOM, 3 * cell + ZOOM)
    assert _is_binomial_draw_grid(grid)
    # The grid shows the runtime's seeded draws, pixel for pixel.
    from tfvae.runtime import Sampler

    draws = Sampler.load(bundle).sample(9, seed=4)
    first = grid[ZOOM : ZOOM + 8 * ZOOM : ZOOM, ZOOM : ZOOM + 8 * ZOOM : ZOOM]
    np.testing.assert_allclose(first, np.round(draws[0, ..., 0] / 16 * 255), atol=1)


@pytest.mark.slow
def test_export_command_writes_where_it_is_told(trained, tmp_path):
    argv = [
        "export",
        str(trained),
        "--name",
        "renamed",
        "--out",
        str(tmp_path / "bundle"),
        "--saved-model-dir",
        str(tmp_path / "serving"),
        "--version",
        "3",
        "--weights",
        "int8",
    ]
    assert cli.main(argv) == 0
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["name"] == "renamed" and manifest["saved_model"]["version"] == 3
    assert (tmp_path / "serving" / "3" / "saved_model.pb").is_file()
    assert manifest["data"]["range"] == [0.0, 16.0]
    assert max(manifest["parity"]["max_abs_error"]["onnx"].values()) <= 1e-4  # before int8
    # E[x|z] of 16-count digits: within 0.1 x 16 counts, as --weights-atol allows.
    assert 0 < manifest["weights"]["max_abs_error"]["decoder"] <= 1.6


def test_sample_needs_exactly_one_source(capsys):
    assert cli.main(["sample"]) == 1
    assert "Expected either a model folder or --bundle" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kind, shape",
    [
        ("samples", (8 * (ZOOM * 8 + ZOOM) + ZOOM,) * 2),
        ("interpolation", (2 * (ZOOM * 8 + ZOOM) + ZOOM, 8 * (ZOOM * 8 + ZOOM) + ZOOM)),
        ("manifold", (20 * (ZOOM * 8 + ZOOM) + ZOOM,) * 2),
        ("latent-scatter", (256, 256, 3)),
    ],
)
def test_plot_writes_each_kind_at_its_documented_size(trained, tmp_path, kind, shape):
    out = tmp_path / f"{kind}.png"
    assert cli.main(["plot", str(trained), "--kind", kind, "--out", str(out)]) == 0
    picture = _png(out)
    assert picture.shape == shape
    assert picture.std() > 5  # not a blank picture


@pytest.mark.slow
def test_impute_draws_originals_masked_inputs_and_completions(trained, tmp_path):
    out = tmp_path / "impute.png"
    argv = ["impute", str(trained), "-n", "4", "--steps", "10", "--out", str(out)]
    assert cli.main(argv) == 0
    grid = _png(out)
    cell = ZOOM * 8 + ZOOM
    assert grid.shape == (3 * cell + ZOOM, 4 * cell + ZOOM)
    x_test, _ = data.load("digits", split="test")
    for column in range(4):
        left = ZOOM + column * cell
        rows = [
            grid[ZOOM + r * cell : ZOOM + r * cell + 8 * ZOOM : ZOOM, left : left + 8 * ZOOM : ZOOM]
            for r in range(3)
        ]
        original = np.round(x_test[column, ..., 0] / 16 * 255)
        np.testing.assert_allclose(rows[0], original, atol=1)
        # Top halves are observed: unchanged in the masked input and the completion.
        np.testing.assert_allclose(rows[1][:4], original[:4], atol=1)
        np.testing.assert_allclose(rows[2][:4], original[:4], atol=1)
        assert np.all(rows[1][4:] == 128)  # missing: mid-grey
        assert not np.all(rows[2][4:] == 128)  # filled in


# Outputs: tfvae refuses, before any training or export, paths that hold what it did not
# write (tfvae.outputs); every file that was there stays byte-identical.


@pytest.fixture
def user_target(request, tmp_path, monkeypatch):
    """(a) a folder of user files, (b) a regular file, (c) `.` in a folder with files."""
    if request.param == "user folder":
        return str(user_files(tmp_path / "victim"))
    if request.param == "file":
        (tmp_path / "important.txt").write_text("precious")
        return str(tmp_path / "important.txt")
    monkeypatch.chdir(user_files(tmp_path / "work"))
    return "."


TARGETS = ["user folder", "file", "cwd"]
REASONS = {
    "user folder": "a folder with 2 entries tfvae did not write: notes.txt, sub",
    "file": "a file",
    "cwd": "the current working directory",
}


@pytest.fixture
def no_fit(monkeypatch):
    """Records calls to `VAE.fit` instead of training."""
    from tfvae.model import VAE

    calls = []
    monkeypatch.setattr(VAE, "fit", lambda *args, **kwargs: calls.append(args))
    return calls


@pytest.mark.parametrize("user_target", TARGETS, indirect=True)
def test_train_refuses_an_out_it_did_not_write_before_training(
    user_target, request, tmp_path, no_fit, capsys
):
    before = tree_snapshot(tmp_path)
    argv = ["train", "--dataset", "digits", "--epochs", "1", "--hidden", "8"]
    assert cli.main([*argv, "--latent-dim", "2", "--out", user_target]) == 1
    error = capsys.readouterr().err
    assert error.startswith("tfvae train: error: Expected out to be a new path")
    assert REASONS[request.node.callspec.params["user_target"]] in error
    assert no_fit == []
    assert tree_snapshot(tmp_path) == before


def test_train_export_refuses_the_export_folders_before_training(tmp_path, monkeypatch, no_fit):
    monkeypatch.chdir(tmp_path)
    user_files(tmp_path / "export" / "run")  # where --export would put the bundle
    before = tree_snapshot(tmp_path)
    argv = ["train", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--out", "run"]
    assert cli.main([*argv, "--export"]) == 1
    assert no_fit == []
    assert tree_snapshot(tmp_path) == before


@pytest.mark.parametrize("user_target", TARGETS, indirect=True)
def test_export_refuses_an_out_it_did_not_write_before_converting(
    trained, user_target, request, tmp_path, monkeypatch, capsys
):
    import tf2onnx

    calls = []
    monkeypatch.setattr(tf2onnx.convert, "from_function", lambda *a, **k: calls.append(k))
    before = tree_snapshot(tmp_path)
    serving = tmp_path / "serving"
    argv = ["export", str(trained), "--out", user_target, "--saved-model-dir", str(serving)]
    assert cli.main(argv) == 1
    error = capsys.readouterr().err
    assert error.startswith("tfvae export: error: Expected out_dir to be a new path")
    assert REASONS[request.node.callspec.params["user_target"]] in error
    assert calls == []
    assert tree_snapshot(tmp_path) == before


@pytest.mark.slow
def test_train_kl_options_reach_the_model(tmp_path):
    out = tmp_path / "warm"
    argv = ["train", "--epochs", "3", "--hidden", "16", "--latent-dim", "2", "--out", str(out)]
    assert cli.main([*argv, "--kl-warmup-epochs", "2", "--beta", "0.5", "--free-bits", "0.3"]) == 0
    history = json.loads((out / "history.json").read_text())
    # 1,500 digits in batches of 100: 15 steps per epoch, a warm-up over 2 x 15 = 30
    # steps; an epoch's logged beta is its last step's, t = 14, 29, 44.
    expected = [0.5 * min(t / 30, 1.0) for t in (14, 29, 44)]
    np.testing.assert_allclose(history["beta"], expected, rtol=1e-6)
    model, _, config = workflow.load(out)
    assert model.beta == schedules.LinearWarmup(steps=30, start=0.0, end=0.5)
    assert model.objective.free_bits == 0.3
    assert (config.beta, config.kl_warmup_epochs, config.kl_cycles, config.free_bits) == (
        0.5,
        2,
        None,
        0.3,
    )


@pytest.mark.slow
def test_train_and_evaluate_models_of_the_labels(tmp_path, capsys):
    """--conditional and --labels-per-class train, evaluate at the test labels, draw
    samples at every label, reconstruct and impute at the split's labels; M2 keeps its
    number of labels per class."""
    argv = ["train", "--epochs", "1", "--hidden", "32", "--latent-dim", "2", "--xla", "off"]
    assert cli.main([*argv, "--conditional", "--out", str(tmp_path / "c")]) == 0
    assert cli.main([*argv, "--labels-per-class", "5", "--out", str(tmp_path / "m2")]) == 0
    conditional, _, _ = workflow.load(tmp_path / "c")
    assert conditional.condition_shape == (10,)
    m2, _, config = workflow.load(tmp_path / "m2")
    assert isinstance(m2, semi_supervised.SemiSupervisedVAE) and config.labels_per_class == 5
    history = json.loads((tmp_path / "m2" / "history.json").read_text())
    assert {"accuracy", "val_accuracy", "classification"} <= set(history)
    capsys.readouterr()
    assert cli.main(["evaluate", str(tmp_path / "m2")]) == 0
    result = json.loads(capsys.readouterr().out)
    # The classifier's accuracy at the test labels, as the last epoch's validation saw it.
    assert result["examples"] == 297
    assert result["accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
    assert cli.main(["evaluate", str(tmp_path / "c"), "--num-samples", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["nll"] < -result["elbo"]  # of log p(x|y), at the test labels
    assert cli.main(["sample", str(tmp_path / "c"), "--out", str(tmp_path / "s.png")]) == 0
    # Reconstructions and imputations are made at each image's label; the pictures of the
    # latent space, which take no label, are refused with what to ask for instead.
    for model in ("c", "m2"):
        folder, png = str(tmp_path / model), str(tmp_path / f"{model}.png")
        assert cli.main(["plot", folder, "--kind", "reconstructions", "-n", "4", "--out", png]) == 0
        assert cli.main(["impute", folder, "-n", "3", "--steps", "2", "--out", png]) == 0
        capsys.readouterr()
        assert cli.main(["plot", folder, "--kind", "interpolation", "--out", png]) == 1
        assert "Expected kind 'samples' or 'reconstructions'" in capsys.readouterr().err
    assert cli.main(["gradients", str(tmp_path / "c"), "--out", png]) == 1
    assert "gradients takes no label, so it needs a model trained" in capsys.readouterr().err


def test_kl_cycles_build_a_cyclical_schedule():
    config = workflow.TrainConfig(kl_cycles=2, beta=2.0).resolve(workflow.RECIPES["digits"])
    model = workflow.build_model(config, workflow.RECIPES["digits"], steps=15)
    # 15 steps in all, 2 cycles of ceil(15 / 2) = 8 steps rising to beta = 2.
    assert model.beta == schedules.Cyclical(period=8, cycles=2, end=2.0)


@pytest.mark.parametrize(
    "options, match",
    [
        (["--objective", "iwae", "--beta", "0.5"], r"objective='elbo' with the KL options"),
        (["--free-bits", "-1"], r"free_bits to be a finite number >= 0"),
        (["--kl-cycles", "0"], r"kl_cycles to be a positive integer"),
    ],
)
def test_train_refuses_bad_kl_options(tmp_path, capsys, options, match):
    argv = ["train", "--epochs", "1", "--out", str(tmp_path / "m"), *options]
    assert cli.main(argv) == 1
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "m").exists()


def test_one_kl_schedule_at_a_time(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--kl-warmup-epochs", "2", "--kl-cycles", "3"])
    assert "not allowed with argument" in capsys.readouterr().err


# Errors: tfvae's own ValueErrors and OSErrors are one line; anything else is a bug and
# keeps its traceback.


def _evaluate_raising(monkeypatch, raise_error):
    monkeypatch.setattr(workflow, "evaluate", lambda *args, **kwargs: raise_error())
    return ["evaluate", "some/model"]


def test_a_type_error_propagates_with_its_traceback(monkeypatch):
    def bug():
        raise TypeError("unsupported operand (a bug)")

    with pytest.raises(TypeError, match="a bug"):
        cli.main(_evaluate_raising(monkeypatch, bug))


def test_a_value_error_from_numpy_internals_propagates(monkeypatch):
    with pytest.raises(ValueError, match="cannot reshape"):
        cli.main(_evaluate_raising(monkeypatch, lambda: np.zeros(3).reshape(2, 2)))


def test_a_value_error_raised_outside_tfvae_propagates(monkeypatch):
    def outside():
        raise ValueError("raised by a test, not by tfvae")

    with pytest.raises(ValueError, match="not by tfvae"):
        cli.main(_evaluate_raising(monkeypatch, outside))


def test_a_value_error_from_tfvae_code_is_one_line(monkeypatch, capsys):
    def tfvae_check():
        validation.positive_int(0, "refine_steps")

    assert cli.main(_evaluate_raising(monkeypatch, tfvae_check)) == 1
    assert capsys.readouterr().err == (
        "tfvae evaluate: error: Expected refine_steps to be a positive integer. "
        "Received: refine_steps=0\n"
    )


def test_an_os_error_about_a_file_is_one_line(monkeypatch, capsys):
    def unreadable():
        raise PermissionError(errno.EACCES, "Permission denied", "some/model/config.json")

    assert cli.main(_evaluate_raising(monkeypatch, unreadable)) == 1
    assert "Permission denied: 'some/model/config.json'" in capsys.readouterr().err


@pytest.mark.slow
def test_train_at_the_largest_seed(tmp_path):
    """`--seed 2147483647` (validation.MAX_SEED) trains. Before the fix in
    `workflow.build_model` this run failed: the decoder was seeded with seed + 1 =
    2147483648 and the command printed "Expected seed to be an integer in [0,
    2147483647] or None. Received: seed=2147483648", a seed the user never gave."""
    out = tmp_path / "run"
    argv = ["train", "--seed", "2147483647", "--epochs", "1", "--hidden", "8"]
    assert cli.main([*argv, "--latent-dim", "2", "--out", str(out)]) == 0
    run = json.loads((out / "config.json").read_text())
    assert run["config"]["seed"] == 2**31 - 1


# tfvae score: per-example ELBO and log-likelihood of a data file under a bundle.


@pytest.fixture(scope="module")
def bundle(trained):
    return trained.parent.parent / "export" / "digits"


@pytest.fixture(scope="module")
def digits_test():
    x_test, _ = data.load("digits", split="test")
    return x_test[:6]  # (6, 8, 8, 1) uint8 counts 0..16


def _read_scores(text):
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["index", "elbo", "log_likelihood"]
    table = np.array(rows[1:], dtype=np.float64)
    return table[:, 0], table[:, 1], table[:, 2]


def test_score_writes_the_runtimes_estimates_without_tensorflow(bundle, digits_test, tmp_path):
    np.save(tmp_path / "x.npy", digits_test)
    out = tmp_path / "scores.csv"
    argv = ["score", "--bundle", str(bundle), str(tmp_path / "x.npy"), "--num-samples", "50"]
    argv += ["--elbo-samples", "20", "--seed", "3", "--out", str(out)]
    code = (
        "import sys\n"
        "from tfvae import cli\n"
        f"assert cli.main({argv!r}) == 0\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    index, elbo, log_likelihood = _read_scores(out.read_text())
    np.testing.assert_array_equal(index, np.arange(6))
    from tfvae.runtime import Sampler

    sampler = Sampler.load(bundle)
    expected_ll = sampler.log_likelihood(digits_test, num_samples=50, seed=3)
    expected_elbo = sampler.elbo(digits_test, num_samples=20, seed=3)
    np.testing.assert_allclose(log_likelihood, expected_ll, rtol=1e-6)
    np.testing.assert_allclose(elbo, expected_elbo, rtol=1e-6)
    # A log-likelihood estimate of 64 binomial counts: negative, at least the ELBO on
    # average (the importance-weighted bound is the tighter one).
    assert np.all(np.isfinite(elbo)) and np.all(log_likelihood < 0)
    assert log_likelihood.mean() > elbo.mean()


def test_score_reads_x_of_an_npz_divides_by_scale_and_prints_to_stdout(
    bundle, digits_test, tmp_path, capsys
):
    np.savez(tmp_path / "raw.npz", x=digits_test.astype(np.float64) * 4, y=np.arange(6))
    argv = ["score", "--bundle", str(bundle), str(tmp_path / "raw.npz"), "--scale", "4"]
    assert cli.main([*argv, "--num-samples", "30", "--elbo-samples", "10"]) == 0
    index, elbo, log_likelihood = _read_scores(capsys.readouterr().out)
    from tfvae.runtime import Sampler

    sampler = Sampler.load(bundle)  # defaults: seed 0
    np.testing.assert_allclose(
        log_likelihood, sampler.log_likelihood(digits_test, num_samples=30, seed=0), rtol=1e-6
    )
    np.testing.assert_allclose(elbo, sampler.elbo(digits_test, num_samples=10, seed=0), rtol=1e-6)


@pytest.mark.parametrize(
    "name, write, message",
    [
        ("x.txt", lambda path: path.write_text("1 2 3"), "Received: DATA="),
        ("x.npz", lambda path: np.savez(path, images=np.zeros((2, 8, 8, 1))), "['images']"),
        ("x.npy", lambda path: path.write_bytes(b"not an array"), "readable without pickle"),
        ("x.npy", lambda path: np.save(path, np.array(["a", "b"])), "of numbers"),
        ("missing.npy", lambda path: None, "which is not a file"),
    ],
)
def test_score_refuses_what_is_not_data_by_argument(bundle, tmp_path, capsys, name, write, message):
    write(tmp_path / name)
    assert cli.main(["score", "--bundle", str(bundle), str(tmp_path / name)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("tfvae score: error: Expected DATA to be a .npy array")
    assert message in error


def test_score_names_a_bad_option_or_shape(bundle, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 7, 7, 1)))
    for options, message in [
        (["--scale", "0"], "Expected scale to be a finite number > 0"),
        (["--num-samples", "0"], "Expected num_samples to be a positive integer"),
        ([], "Expected x of shape (batch_size, *(8, 8, 1))"),
    ]:
        assert cli.main(["score", "--bundle", str(bundle), str(tmp_path / "x.npy"), *options]) == 1
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_train_with_the_categorical_likelihood_exports_and_samples_its_levels(
    tmp_path, monkeypatch
):
    """`--likelihood categorical` on the digits: 17 grey levels, trained, exported and
    sampled by onnxruntime, with no code outside the family's file naming it."""
    from tfvae.runtime import Sampler

    monkeypatch.chdir(tmp_path)
    argv = ["train", "--likelihood", "categorical", "--epochs", "2", "--hidden", "32"]
    assert cli.main([*argv, "--latent-dim", "2", "--export"]) == 0
    run = json.loads((tmp_path / "saved_models" / "digits" / "config.json").read_text())
    assert run["recipe"]["likelihood_config"] == {"num_levels": 17}
    assert run["recipe"]["scale"] is None and run["recipe"]["binarize"] is None
    sampler = Sampler.load(tmp_path / "export" / "digits")
    assert sampler.manifest["likelihood"]["constants"] == {"num_levels": 17}
    x = sampler.sample(500, seed=0)
    levels = np.unique(x)
    assert set(levels) <= set(range(17)) and len(levels) > 8


@pytest.mark.slow
def test_gradients_plots_the_numbers_gradient_variance_gives(trained, tmp_path, capsys):
    """The PNG's points are `gradient_variance`'s encoder variances, computed here again
    on the same batch and seed: the JSON beside it holds the same numbers, the picture is
    the chart of those numbers, and each point's centre pixel has its series' colour."""
    from tfvae import diagnostics

    out = tmp_path / "gradients.png"
    argv = ["gradients", str(trained), "--samples", "1,4", "--num-draws", "3"]
    assert cli.main([*argv, "--batch-size", "10", "--seed", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    stored = json.loads(out.with_suffix(".json").read_text())
    model, recipe, config_ = workflow.load(trained)
    x, _ = data.load(config_.dataset, split="train")
    x = workflow.model_input(x[:10], recipe, seed=3)
    expected = {}
    for num_samples in (1, 4):
        measured = diagnostics.gradient_variance(
            model, x, ["reparameterization", "score_function"], 3, num_samples, seed=3
        )
        for name, statistics in measured.items():
            expected.setdefault(name, []).append(statistics.encoder.variance)
            row = f"{name} {num_samples} {statistics.encoder.variance:.4g}"
            assert row in " ".join(printed.split()), row
    assert sorted(stored["series"]) == ["reparameterization", "score_function"]
    for name, values in expected.items():
        assert stored["series"][name]["num_samples"] == [1, 4]
        np.testing.assert_allclose(stored["series"][name]["encoder_variance"], values, rtol=1e-5)
    series = {name: ([1, 4], values) for name, values in expected.items()}
    image, positions = plots.log_log_chart(
        series,
        x_label="latent samples L per example",
        y_label="encoder gradient variance (trace of the covariance)",
    )
    picture = _png(out)
    np.testing.assert_array_equal(picture, image)
    for index, centres in enumerate(positions.values()):
        for column, row in centres:
            np.testing.assert_array_equal(picture[row, column], plots.PALETTE[index])


def test_multi_worker_training_without_tf_config_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = cli.main(["train", "--distribute", "multi-worker", "--epochs", "1", "--out", "m"])
    assert code == 1
    error = capsys.readouterr().err
    assert "tfvae train: error: Expected the TF_CONFIG environment variable" in error
    assert "Received: TF_CONFIG unset" in error
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
