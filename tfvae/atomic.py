"""Atomic writes: nothing ever sees a partly written file or folder.

Files are written to a temporary sibling and renamed into place (`os.replace` is atomic
on POSIX within one file system): a reader sees the old file or the new one. Folders are
assembled in a temporary sibling; the old folder, if any, is moved aside and the new one
renamed into its place. An error or interruption while writing leaves the old folder
untouched; between the two renames the folder is absent for an instant, never partial.
"""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_bytes(path, payload: bytes) -> Path:
    """Writes `payload` to `path` atomically (creating parent folders); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes owner-only files.
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text(path, text: str) -> Path:
    """Writes UTF-8 `text` to `path` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def directory(path) -> Iterator[Path]:
    """Yields an empty temporary folder that replaces `path` when the block succeeds.

    Example:
        >>> with atomic.directory("saved_models/digits") as staging:
        ...     model.save(staging / "model.keras")

    On an exception the temporary folder is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes owner-only folders.
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_into_place(staging, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_into_place(staging: Path, path: Path) -> None:
    if not path.exists():
        os.replace(staging, path)
        return
    retired = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
    os.replace(path, retired / path.name)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(retired / path.name, path)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(retired, ignore_errors=True)
