"""Atomic writes: nothing ever sees a partly written file or folder.

Files are written to a temporary sibling and renamed into place (`os.replace` is atomic
on POSIX within one file system): a reader sees the old file or the new one. Folders are
assembled in a temporary sibling; the old folder, if any, is moved aside and the new one
renamed into its place. An error or interruption while writing leaves the old folder
untouched; between the two renames the folder is absent for an instant, never partial.

A folder is never replaced blindly: `directory` replaces an existing folder only when the
caller's `check` accepts it, right before the swap (`tfvae.outputs` knows which folders
tfvae wrote), and it can carry entries of the old folder over into the new one.
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
def directory(path, check=None, keep=None) -> Iterator[Path]:
    """Yields an empty staging folder that replaces `path` when the block succeeds.

    An existing folder is replaced only when `check` accepts it: `check(path)` runs when
    the block starts and again right before the swap (the folder may have changed while
    the block ran) and raises to refuse. Without `check`, only an absent path or an empty
    folder is replaced. Entries of the old folder named by `keep` move into the staging
    folder just before the swap, and back if the swap fails.

    Args:
        path: the folder to write.
        check: a callable `check(path)` that raises unless `path` may be replaced.
        keep: a callable `keep(old_folder)` returning the names of the old folder's
            entries to carry over into the new one.

    Yields:
        The staging folder, an empty sibling of `path`.

    Raises:
        FileExistsError: without `check`, when `path` is not absent or an empty folder;
            with `keep`, when the block wrote an entry that is to be carried over.
        Whatever `check` raises, with `path` left as it was.

    Example:
        >>> with atomic.directory("export/digits", check=my_check) as staging:
        ...     (staging / "manifest.json").write_text("{}")

    On an exception the staging folder is removed and `path` is left as it was.
    """
    path = Path(path)
    check = check or _absent_or_empty
    check(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    carried = []  # names moved from the old folder into staging
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes owner-only folders.
        yield staging
        check(path)
        if keep is not None and path.is_dir() and not path.is_symlink():
            for name in keep(path):
                if os.path.lexists(staging / name):
                    raise FileExistsError(
                        f"Expected the new folder to leave {name!r} to the old one, which "
                        f"keeps it. Received: {staging / name}"
                    )
                os.replace(path / name, staging / name)
                carried.append(name)
        _swap_into_place(staging, path)
    except BaseException:
        # Carried entries go back first; if one cannot, staging is kept, not deleted.
        if _move_back(carried, staging, path):
            shutil.rmtree(staging, ignore_errors=True)
        raise


def _absent_or_empty(path: Path) -> None:
    if os.path.lexists(path) and not (path.is_dir() and not any(path.iterdir())):
        raise FileExistsError(
            f"Expected an absent path or an empty folder to replace. Received: {path}"
        )


def _move_back(names, staging: Path, path: Path) -> bool:
    """Moves carried entries back into `path`; False if one could not be moved."""
    moved = True
    for name in names:
        try:
            os.replace(staging / name, path / name)
        except OSError:
            moved = False
    return moved


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _swap_into_place(staging: Path, path: Path) -> None:
    if not os.path.lexists(path):
        os.replace(staging, path)
        return
    retired = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
    try:
        os.replace(path, retired / path.name)
    except BaseException:
        retired.rmdir()  # still empty
        raise
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(retired / path.name, path)  # if this fails, the old folder stays in retired
        retired.rmdir()
        raise
    shutil.rmtree(retired, ignore_errors=True)
