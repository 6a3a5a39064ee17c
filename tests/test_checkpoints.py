"""A killed `tfvae train` resumes where it stopped; other configurations are refused."""

import contextlib
import errno
import io
import json
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tfvae import checkpoints, cli, data, workflow

EPOCHS = 4
STEPS_PER_EPOCH = 15  # 1,500 digits in batches of 100
KILL_AFTER = 2  # epochs in the checkpoint before the kill
RUN_SECONDS = 240  # each subprocess is bounded


def _arguments(out, *extra):
    return [
        "train",
        "--dataset",
        "digits",
        "--epochs",
        str(EPOCHS),
        "--hidden",
        "32",
        "--latent-dim",
        "4",
        "--out",
        str(out),
        "--no-xla",  # XLA's compilations would cost more than these runs' steps on CPU
        *extra,
    ]


def _main(arguments):
    """`tfvae` run in this process: (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(arguments)
    return code, stdout.getvalue(), stderr.getvalue()


def _epochs_done(folder):
    try:
        return json.loads((folder / "state.json").read_text())["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def _kill_after_epoch(command, cwd, folder, epochs):
    """Starts `command`, SIGKILLs it once its checkpoint holds `epochs` epochs."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + RUN_SECONDS
        while _epochs_done(folder) < epochs:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _test_elbo(folder):
    model, recipe, _ = workflow.load(folder)
    x_test, _ = data.load("digits", split="test")
    x = workflow.model_input(x_test, recipe)
    return model, model.evaluate(x, batch_size=len(x), verbose=0, return_dict=True)["elbo"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and one killed (a subprocess, SIGKILL) after KILL_AFTER
    epochs and run again; the runs that are not killed run in this process."""
    root = tmp_path_factory.mktemp("runs")
    code, _, stderr = _main(_arguments(root / "uninterrupted"))
    assert code == 0, stderr[-3000:]
    killed = root / "killed"
    folder = checkpoints.folder_for(killed)
    command = [sys.executable, "-m", "tfvae.cli", *_arguments(killed)]
    _kill_after_epoch(command, root, folder, KILL_AFTER)
    saved_epochs = _epochs_done(folder)
    checkpoint_model = keras.saving.load_model(folder / "model.keras")
    other = _main(_arguments(killed, "--latent-dim", "3"))
    checkpoint_after_refusal = _epochs_done(folder)
    resumed = _main(_arguments(killed))
    assert resumed[0] == 0, resumed[2][-3000:]
    return {
        "uninterrupted": root / "uninterrupted",
        "killed": killed,
        "saved_epochs": saved_epochs,
        "checkpoint_model": checkpoint_model,
        "other": other,
        "checkpoint_after_refusal": checkpoint_after_refusal,
        "resumed": resumed,
    }


@pytest.mark.slow
def test_a_killed_run_resumes_and_finishes_the_requested_epochs(runs):
    assert KILL_AFTER <= runs["saved_epochs"] < EPOCHS
    _, stdout, _ = runs["resumed"]
    assert f"Resuming from {checkpoints.folder_for(runs['killed'])}" in stdout
    assert f"after epoch {runs['saved_epochs']} of {EPOCHS}" in stdout
    history = json.loads((runs["killed"] / "history.json").read_text())
    latent = history.pop("latent")
    assert {len(values) for values in history.values()} == {EPOCHS}
    assert latent["epoch"] == list(range(EPOCHS))  # diagnostics of every epoch, kept too
    assert history["active_units"] == latent["active_units"]
    assert not checkpoints.folder_for(runs["killed"]).exists()  # removed once finished


@pytest.mark.slow
def test_resumed_run_continues_the_optimizer_and_the_random_streams(runs):
    resumed, _ = _test_elbo(runs["killed"])
    uninterrupted, _ = _test_elbo(runs["uninterrupted"])
    checkpoint = runs["checkpoint_model"]
    assert int(checkpoint.optimizer.iterations) == runs["saved_epochs"] * STEPS_PER_EPOCH
    assert int(resumed.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH
    # A replayed training stream would restart from the seed's first state and end where
    # a run of EPOCHS - saved_epochs epochs ends; a continued one ends with the
    # uninterrupted run's state, after EPOCHS * STEPS_PER_EPOCH draws.
    fresh = keras.random.SeedGenerator(0).state.numpy()
    assert not np.array_equal(checkpoint.seed_generator.state.numpy(), fresh)
    for name in ("seed_generator", "evaluation_seed_generator"):
        np.testing.assert_array_equal(
            getattr(resumed, name).state.numpy(), getattr(uninterrupted, name).state.numpy()
        )


@pytest.mark.slow
def test_resumed_run_ends_where_the_uninterrupted_run_ends(runs):
    uninterrupted = _test_elbo(runs["uninterrupted"])[1]
    resumed = _test_elbo(runs["killed"])[1]
    # Data order, noise and optimizer state all continue: measured, the resumed run's
    # test ELBO equals the uninterrupted run's exactly (as two uninterrupted runs' do);
    # 1e-3 nats allows for a thread-dependent summation order.
    print(f"\ntest ELBO: uninterrupted {uninterrupted}, resumed after kill {resumed}")
    assert resumed == pytest.approx(uninterrupted, abs=1e-3)


@pytest.mark.slow
def test_a_checkpoint_of_another_configuration_is_refused(runs):
    code, _, stderr = runs["other"]
    assert code == 1
    assert "latent_dim: 4 in the checkpoint, 3 now" in stderr
    assert "--restart" in stderr
    assert runs["checkpoint_after_refusal"] == runs["saved_epochs"]  # left as it was


@pytest.mark.slow
def test_restart_discards_the_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    arguments = ["train", "--epochs", "2", "--hidden", "8", "--latent-dim", "2", "--out", "m"]
    arguments += ["--no-xla"]  # XLA's compilations would cost more than the steps on CPU

    def crash(model, recipe, path, **kwargs):  # as a full disk fails a write
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:  # dies after training, before the model folder
        patch.setattr(workflow, "write_samples", crash)
        assert cli.main(arguments) == 1
    assert _epochs_done(tmp_path / "m.checkpoint") == 2
    assert cli.main([*arguments, "--restart"]) == 0
    assert "Resuming" not in capsys.readouterr().out
    history = json.loads((tmp_path / "m" / "history.json").read_text())
    assert len(history["loss"]) == 2
    assert not (tmp_path / "m.checkpoint").exists()


@pytest.mark.slow
def test_a_checkpoint_of_tfvae_0_1_resumes(tmp_path, monkeypatch, capsys):
    """tfvae 0.1 recorded jit_compile as false for --no-xla; today's run is "off"."""
    monkeypatch.chdir(tmp_path)
    arguments = ["train", "--epochs", "1", "--hidden", "8", "--latent-dim", "2", "--out", "m"]
    arguments += ["--no-xla"]

    def crash(model, recipe, path, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(workflow, "write_samples", crash)
        assert cli.main(arguments) == 1
    state_file = tmp_path / "m.checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["run"]["jit_compile"] == "off"
    state["run"]["jit_compile"] = False  # as tfvae 0.1 wrote it
    state_file.write_text(json.dumps(state))
    assert cli.main(arguments) == 0
    assert "Resuming from" in capsys.readouterr().out
