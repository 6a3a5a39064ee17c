"""Output folders tfvae owns: what it writes in each, its marker, and what it refuses.

tfvae replaces a folder only if it wrote that folder itself, the way `git clone` refuses a
destination that "already exists and is not an empty directory". Each kind of folder has a
marker, a JSON file inside it holding `"format": "tfvae...."`:

    model folder          `tfvae.workflow.train`'s output (default `saved_models/NAME/`):
                          model.keras, config.json, history.json, samples.png,
                          reconstructions.png, onnxruntime_samples.png (`tfvae train
                          --export`) and SavedModel version folders `1/`, `2/`, ...;
                          marker: config.json, `"format": "tfvae.model"`.
    ONNX bundle           `tfvae.export.export_model`'s `export/NAME/`: decoder.onnx,
                          encoder.onnx, manifest.json, manifest.sha256;
                          marker: manifest.json, `"format": "tfvae.bundle"`.
    SavedModel version    `saved_models/NAME/VERSION/` in TF Serving's layout:
                          saved_model.pb, fingerprint.pb, variables/, assets/,
                          assets.extra/; marker: assets.extra/tfvae.json,
                          `"format": "tfvae.saved_model"`.
    SavedModel base       `saved_models/NAME/`, where version folders go: a model folder,
                          or a folder that holds nothing but SavedModel version folders.
    checkpoint folder     `OUT.checkpoint/` beside a model folder (`tfvae.checkpoints`):
                          model.keras, state.json; marker: state.json,
                          `"format": "tfvae.checkpoint"`.

`check_destination(path, kind, argument)` lets tfvae write `path` only when it is absent
(inside a folder, not a file), an empty folder, or a folder of that kind with its marker
and nothing at its top level but what tfvae writes there. It always refuses a file or a
symbolic link at `path`, the current working directory and its ancestors, the home folder
and its ancestors, and any input (`protected`) or a folder that holds one. Callers check
before the expensive work starts and again right before the swap (`directory`).

Example:
    >>> from tfvae import outputs
    >>> outputs.check_destination("saved_models/digits", outputs.MODEL, "out")
    PosixPath('saved_models/digits')
"""

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from tfvae import atomic

_VERSION_NAME = re.compile(r"[0-9]+")
_LISTED = 10  # entries named in a message; the rest are counted


class OutputRefusedError(ValueError):
    """tfvae refuses to write to a path that holds something it did not write.

    Attributes:
        path: the refused path, as given.
        argument: the argument that named it (e.g. `"out"`).
        reason: what is there, e.g. `"a folder with 2 entries tfvae did not write: a, b"`.
    """

    def __init__(self, path, argument: str, reason: str, expected: str, advice: str):
        self.path = Path(path)
        self.argument = argument
        self.reason = reason
        super().__init__(
            f"Expected {argument} to be {expected}. Received: {argument}={str(path)!r}, "
            f"{reason}. {advice}"
        )


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of folder that tfvae writes.

    Attributes:
        name: how messages call it, e.g. `"model folder"`.
        format: the value of `"format"` in its marker, or None for a folder that is
            recognized by its contents alone.
        marker: the JSON file, relative to the folder, that holds `"format": format`.
        entries: the names tfvae writes at its top level.
        entry_pattern: a regular expression of more such names (a bundle's networks of
            the latent layers above z1, `decoder_2.onnx`, ...), or None.
        versions: whether it also holds SavedModel version folders (`1/`, `2/`, ...),
            which survive when the folder is replaced.
        also: kinds such a folder may be instead, told apart by their marker.
    """

    name: str
    format: str | None
    marker: str | None
    entries: frozenset[str] = frozenset()
    entry_pattern: str | None = None
    versions: bool = False
    also: tuple["Kind", ...] = ()

    @property
    def expected(self) -> str:
        """What a destination of this kind may be, in words."""
        if self.format is None:
            kinds = " or ".join(f"a {kind.name}" for kind in self.also)
            owned = f"{kinds}, or a folder of SavedModel version folders"
        else:
            owned = f'a {self.name} ({self.marker} with "format": {json.dumps(self.format)})'
        return f"a new path, an empty folder or {owned} that tfvae wrote"


SAVED_MODEL = Kind(
    name="SavedModel version folder",
    format="tfvae.saved_model",
    marker="assets.extra/tfvae.json",
    entries=frozenset({"saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra"}),
)
MODEL = Kind(
    name="model folder",
    format="tfvae.model",
    marker="config.json",
    entries=frozenset(
        {
            "model.keras",
            "config.json",
            "history.json",
            "samples.png",
            "reconstructions.png",
            "onnxruntime_samples.png",
        }
    ),
    versions=True,
)
BUNDLE = Kind(
    name="bundle folder",
    format="tfvae.bundle",
    marker="manifest.json",
    entries=frozenset({"decoder.onnx", "encoder.onnx", "manifest.json", "manifest.sha256"}),
    entry_pattern=r"(decoder|encoder)_[0-9]+\.onnx",  # tfvae.export: one per latent layer
)
CHECKPOINT = Kind(
    name="checkpoint folder",
    format="tfvae.checkpoint",
    marker="state.json",
    entries=frozenset({"model.keras", "state.json"}),
)
SAVED_MODEL_BASE = Kind(
    name="SavedModel base folder", format=None, marker=None, versions=True, also=(MODEL,)
)


def check_destination(path, kind: Kind, argument: str, protected: Mapping | None = None) -> Path:
    """Returns `path` if tfvae may write a `kind` folder there; raises otherwise.

    Args:
        path: the destination folder.
        kind: `MODEL`, `BUNDLE`, `SAVED_MODEL`, `SAVED_MODEL_BASE` or `CHECKPOINT`.
        argument: the name of the argument that gave `path`, for the message.
        protected: `{argument: path}` of inputs that must survive, such as the data
            folder: `path` may be neither one of them nor a folder that holds one.

    Returns:
        `path` as a `Path`.

    Raises:
        OutputRefusedError: when `path` is a file or a symbolic link, lies inside a file,
            is the working directory, the home folder, `/`, an ancestor of one of these or
            of a protected input, or a folder that is not empty and is not a `kind`
            folder holding only what tfvae writes there.
    """
    path = Path(path)
    reason, advice = _refusal(path, kind, dict(protected or {}))
    if reason is not None:
        raise OutputRefusedError(path, argument, reason, kind.expected, advice)
    return path


def check_apart(paths: Mapping) -> None:
    """Raises `OutputRefusedError` unless no two of `{argument: path}` are the same
    folder or one inside the other."""
    named = [(argument, Path(path), _real(path)) for argument, path in paths.items()]
    for index, (argument, path, real) in enumerate(named):
        for other, other_path, other_real in named[index + 1 :]:
            if real == other_real or real in other_real.parents or other_real in real.parents:
                raise OutputRefusedError(
                    path,
                    argument,
                    f"which overlaps {other}={str(other_path)!r}",
                    f"a folder apart from {other}",
                    "Choose folders that are not inside one another.",
                )


def saved_model_versions(folder) -> list[str]:
    """The names of the tfvae SavedModel version folders directly inside `folder`."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(name for name in os.listdir(folder) if _is_version(folder / name))


def write_marker(folder, kind: Kind) -> Path:
    """Writes `kind`'s marker file, `{"format": kind.format}`, into `folder`."""
    path = Path(folder) / kind.marker
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": kind.format}) + "\n")
    return path


def directory(path, kind: Kind, argument: str, protected: Mapping | None = None):
    """`tfvae.atomic.directory` for a `kind` folder: yields an empty staging folder that
    replaces `path` when the block succeeds, after `check_destination` accepts `path`
    again; the old folder's SavedModel version folders move into the new one.

    Example:
        >>> with outputs.directory("saved_models/digits", outputs.MODEL, "out") as staging:
        ...     model.save(staging / "model.keras")
    """

    def check(destination):
        check_destination(destination, kind, argument, protected)

    return atomic.directory(path, check=check, keep=saved_model_versions if kind.versions else None)


def _refusal(path: Path, kind: Kind, protected: dict) -> tuple[str | None, str]:
    """What is at `path` that tfvae must not replace (None if nothing), and advice."""
    elsewhere = "Choose another path."
    if path.is_symlink():
        return "a symbolic link", elsewhere
    real = _real(path)
    for place, folder in _places():
        if real == folder:
            return f"the {place} ({folder})", elsewhere
        if real in folder.parents:
            return f"an ancestor of the {place} ({folder})", elsewhere
    for name, input_path in protected.items():
        input_real = _real(input_path)
        if real == input_real:
            return f"the input {name}={str(input_path)!r}", elsewhere
        if real in input_real.parents:
            return f"a folder that holds the input {name}={str(input_path)!r}", elsewhere
    if not path.exists():
        parent = next(p for p in path.absolute().parents if p.exists())
        if not parent.is_dir():
            return f"a path inside the file {str(parent)!r}", elsewhere
        return None, ""
    if not path.is_dir():
        return "a file", "Choose another path, or move that file away."
    return _foreign_entries(path, kind), "Choose another path, or move those entries away."


def _foreign_entries(folder: Path, kind: Kind) -> str | None:
    """What in an existing `folder` tfvae did not write as a `kind` folder, or None."""
    entries = sorted(os.listdir(folder))
    if not entries:
        return None
    for other in kind.also:
        if _has_marker(folder, other):
            return _foreign_entries(folder, other)
    if kind.format is not None and not _has_marker(folder, kind):
        reason = f"a folder with {_count(entries)} tfvae did not write: {_listing(entries)}"
        if kind.marker in entries:
            reason += f' ({kind.marker} lacks tfvae\'s "format": {json.dumps(kind.format)})'
        return reason
    foreign = [name for name in entries if not _is_written_by_tfvae(folder / name, kind)]
    if not foreign:
        return None
    owner = "a folder" if kind.format is None else f"a {kind.name} tfvae wrote,"
    return f"{owner} with {_count(foreign)} tfvae did not write: {_listing(foreign)}"


def _is_written_by_tfvae(entry: Path, kind: Kind) -> bool:
    if entry.name in kind.entries or (kind.versions and _is_version(entry)):
        return True
    return (
        kind.entry_pattern is not None and re.fullmatch(kind.entry_pattern, entry.name) is not None
    )


def _is_version(entry: Path) -> bool:
    return (
        _VERSION_NAME.fullmatch(entry.name) is not None
        and not entry.is_symlink()
        and entry.is_dir()
        and _has_marker(entry, SAVED_MODEL)
    )


def _has_marker(folder: Path, kind: Kind) -> bool:
    if kind.marker is None:
        return False
    marker = folder / kind.marker
    try:
        if marker.is_symlink() or not marker.is_file():
            return False
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get("format") == kind.format


def _places() -> list[tuple[str, Path]]:
    """The folders never written, nor their ancestors: the working directory and home."""
    places = [("current working directory", Path.cwd().resolve())]
    try:
        places.append(("home folder", Path.home().resolve()))
    except (KeyError, RuntimeError):  # no HOME and no password entry
        pass
    return places


def _real(path) -> Path:
    return Path(os.path.realpath(path))


def _count(names) -> str:
    return f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}"


def _listing(names) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown if len(names) <= _LISTED else f"{shown} and {len(names) - _LISTED} more"
