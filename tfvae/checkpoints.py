"""Resumable training runs: the checkpoint that `tfvae train` writes after every epoch.

A run that writes the model folder `OUT` keeps its checkpoint beside it, in
`OUT.checkpoint/`, so the last finished model in `OUT` is never disturbed:

    model.keras   the model: weights, optimizer slots and iterations, both random
                  streams (training; evaluation and sampling) and the KL weight
    state.json    {"format": "tfvae.checkpoint", "run": the run's configuration and data
                  recipe, "epochs_done": k, "history": the per-epoch logs of epochs 0..k-1,
                  "latent": the latent diagnostics of those epochs}

The folder is replaced atomically after each epoch, so a kill leaves the last whole
checkpoint. Re-running the same command resumes after epoch k: the model continues its
optimizer and random streams, and the data pipeline starts at epoch k of its sequence
(`tfvae.data.make_dataset(initial_epoch=k)`), so no noise is replayed. A checkpoint of
another configuration is refused with the options that differ.
"""

import dataclasses
import json
import shutil
from pathlib import Path

import tfvae._backend  # noqa: F401

import keras

from tfvae import distribute, outputs


def folder_for(out) -> Path:
    """The checkpoint folder of a run whose model folder is `out`: `out.checkpoint`."""
    out = Path(out)
    return out.with_name(f"{out.name}.checkpoint")


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a run with other options than this one.

    Attributes:
        differences: `{option: (checkpoint's value, this run's value)}`.
    """

    def __init__(self, folder, differences: dict):
        self.differences = differences
        listed = "; ".join(
            f"{option}: {saved!r} in the checkpoint, {now!r} now"
            for option, (saved, now) in differences.items()
        )
        super().__init__(
            f"Expected the checkpoint {folder} to come from this run's configuration, to "
            f"resume it. Received a checkpoint whose options differ: {listed}. Re-run with "
            "the checkpoint's options to resume, or pass --restart (restart=True) to "
            "discard it and start again."
        )


@dataclasses.dataclass(frozen=True)
class Resumed:
    """A run read back from its checkpoint.

    Attributes:
        model: the compiled model as it was after `epochs_done` epochs.
        epochs_done: the number of finished epochs, k.
        history: `{metric: [value per finished epoch]}`.
        latent: `tfvae.callbacks.LatentDiagnostics.history` of those epochs.
    """

    model: keras.Model
    epochs_done: int
    history: dict
    latent: dict


def resume(folder, run: dict, upgrade=None) -> Resumed | None:
    """The run saved in the checkpoint `folder`, or None when there is none.

    Args:
        folder: a checkpoint folder (`folder_for(out)`).
        run: this run's configuration, JSON-serializable; it must equal the saved one.
        upgrade: brings a run saved by an earlier tfvae to today's form before the
            comparison (`tfvae.config.upgraded`); default: compared as saved.

    Raises:
        CheckpointMismatchError: when the checkpoint's run differs from `run`.
        tfvae.outputs.OutputRefusedError: when `folder` holds something tfvae did not write.
    """
    folder = outputs.check_destination(folder, outputs.CHECKPOINT, "checkpoint")
    if not (folder / "state.json").is_file():
        return None
    state = json.loads((folder / "state.json").read_text())
    saved = upgrade(state["run"]) if upgrade else state["run"]
    differences = _differences(saved, _as_json(run))
    if differences:
        raise CheckpointMismatchError(folder, differences)
    model = keras.saving.load_model(folder / "model.keras")
    return Resumed(model, int(state["epochs_done"]), state["history"], state["latent"])


def discard(folder) -> None:
    """Deletes the checkpoint `folder` if there is one (only if tfvae wrote it)."""
    folder = outputs.check_destination(folder, outputs.CHECKPOINT, "checkpoint")
    if folder.exists():
        shutil.rmtree(folder)


class Checkpoint(keras.callbacks.Callback):
    """Writes the checkpoint after every epoch; its `history` holds every epoch's logs.

    Put it after the callbacks that add to the logs (`LatentDiagnostics`). In a
    multi-worker run only the chief writes (`tfvae.distribute.is_chief`).

    Args:
        folder: the checkpoint folder, replaced atomically after each epoch.
        run: the run's configuration, JSON-serializable, saved for `resume` to compare.
        history: the logs of the epochs before this `fit` (a resumed run's), if any.
        latent: a `LatentDiagnostics.history` dict (the callback's own, which it fills
            during `fit`), saved with each checkpoint.
    """

    def __init__(self, folder, run: dict, history: dict | None = None, latent=None):
        super().__init__()
        self.folder = Path(folder)
        self.run = _as_json(run)
        self.history = {key: list(values) for key, values in (history or {}).items()}
        self.latent = latent if latent is not None else {}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        state = {
            "format": outputs.CHECKPOINT.format,
            "run": self.run,
            "epochs_done": epoch + 1,
            "history": self.history,
            "latent": self.latent,
        }
        if not distribute.is_chief(self.model.distribute_strategy):
            return
        with outputs.directory(self.folder, outputs.CHECKPOINT, "checkpoint") as staging:
            self.model.save(staging / "model.keras")
            (staging / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def _as_json(value):
    """`value` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _differences(saved: dict, now: dict, prefix: str = "") -> dict:
    """`{dotted option: (saved, now)}` for every leaf where the two runs differ."""
    differences = {}
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences.update(_differences(a, b, f"{prefix}{key}."))
        elif a != b:
            differences[f"{prefix}{key}"] = (a, b)
    return differences
