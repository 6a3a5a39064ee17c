"""Atomic file and folder writes leave the old state intact on failure."""

import os

import pytest

from tfvae import atomic


def _tree(folder):
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_write_bytes_creates_parents_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    atomic.write_bytes(target, b"first")
    atomic.write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["file.bin"]


def test_failed_write_leaves_the_old_file_and_no_partial_file(monkeypatch, tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")

    def failing_fsync(fd):
        raise OSError("disk full (test)")

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_bytes(target, b"new")
    assert os.listdir(tmp_path) == ["file.bin"]
    assert target.read_bytes() == b"old"


def test_directory_appears_whole_when_the_block_succeeds(tmp_path):
    target = tmp_path / "bundle"
    with atomic.directory(target) as staging:
        (staging / "one.txt").write_text("1")
        assert not target.exists()  # Nothing is visible before the block ends.
    assert _tree(target) == {"one.txt": b"1"}
    assert os.listdir(tmp_path) == ["bundle"]


def _owned(folder):
    """A folder the caller owns: it holds the caller's marker and nothing else but data."""
    folder.mkdir()
    (folder / "MARKER").write_text("written by us")
    return folder


def _only_if_owned(path):
    """A caller's check: accept an absent path or a folder with the marker."""
    if path.exists() and not (path / "MARKER").is_file():
        raise ValueError(f"not ours: {path}")


def test_directory_replaces_a_folder_its_check_accepts(tmp_path):
    target = _owned(tmp_path / "bundle")
    (target / "stale.txt").write_text("stale")
    with atomic.directory(target, check=_only_if_owned) as staging:
        (staging / "MARKER").write_text("new")
        (staging / "fresh.txt").write_text("fresh")
    assert _tree(target) == {"MARKER": b"new", "fresh.txt": b"fresh"}
    assert os.listdir(tmp_path) == ["bundle"]


def test_directory_without_a_check_replaces_only_an_absent_or_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with atomic.directory(tmp_path / "empty") as staging:
        (staging / "one.txt").write_text("1")
    assert _tree(tmp_path / "empty") == {"one.txt": b"1"}
    target = tmp_path / "user"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="an absent path or an empty folder"):
        with atomic.directory(target):
            pytest.fail("the block must not run")  # pragma: no cover
    assert _tree(target) == {"notes.txt": b"mine"}
    assert sorted(os.listdir(tmp_path)) == ["empty", "user"]


def test_directory_checks_again_right_before_the_swap(tmp_path):
    target = _owned(tmp_path / "bundle")
    checked = []

    def check(path):
        checked.append(path)
        _only_if_owned(path)

    with pytest.raises(ValueError, match="not ours"):
        with atomic.directory(target, check=check) as staging:
            (staging / "MARKER").write_text("new")
            (target / "MARKER").unlink()  # the folder changed while the block ran
            (target / "notes.txt").write_text("a user's file")
    assert checked == [target, target]
    assert _tree(target) == {"notes.txt": b"a user's file"}
    assert os.listdir(tmp_path) == ["bundle"]


def test_directory_carries_kept_entries_over(tmp_path):
    target = _owned(tmp_path / "model")
    (target / "1").mkdir()
    (target / "1" / "weights.bin").write_bytes(b"version one")
    (target / "old.txt").write_text("old")
    with atomic.directory(target, check=_only_if_owned, keep=lambda old: ["1"]) as staging:
        (staging / "MARKER").write_text("new")
    assert _tree(target) == {"MARKER": b"new", "1/weights.bin": b"version one"}
    assert os.listdir(tmp_path) == ["model"]


def test_directory_moves_kept_entries_back_when_the_swap_fails(tmp_path, monkeypatch):
    target = _owned(tmp_path / "model")
    (target / "1").mkdir()
    (target / "1" / "weights.bin").write_bytes(b"version one")
    before = _tree(target)
    real_replace = os.replace

    def fail_to_swap(source, destination):
        if str(source).endswith(".part"):  # the staging folder, not a kept entry
            raise OSError("rename failed (test)")
        return real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "replace", fail_to_swap)
    with pytest.raises(OSError, match="rename failed"):
        with atomic.directory(target, check=_only_if_owned, keep=lambda old: ["1"]) as staging:
            (staging / "MARKER").write_text("new")
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["model"]


def test_directory_refuses_to_overwrite_a_kept_entry_with_a_new_one(tmp_path):
    target = _owned(tmp_path / "model")
    (target / "1").mkdir()
    (target / "1" / "weights.bin").write_bytes(b"version one")
    before = _tree(target)
    with pytest.raises(FileExistsError, match="leave '1' to the old one"):
        with atomic.directory(target, check=_only_if_owned, keep=lambda old: ["1"]) as staging:
            (staging / "1").mkdir()
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["model"]


@pytest.mark.parametrize("exists", [True, False])
def test_directory_removes_staging_when_the_first_rename_fails(tmp_path, monkeypatch, exists):
    target = tmp_path / "bundle"
    if exists:
        _owned(target)
        (target / "model.bin").write_bytes(b"old weights")
    before = _tree(target) if exists else None
    calls = []

    def failing_replace(source, destination):
        calls.append((source, destination))
        raise OSError("rename failed (test)")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        with atomic.directory(target, check=_only_if_owned) as staging:
            (staging / "model.bin").write_bytes(b"new weights")
    assert len(calls) == 1
    assert os.listdir(tmp_path) == (["bundle"] if exists else [])  # no .part, no .old
    if exists:
        assert _tree(target) == before


def test_directory_interrupted_leaves_the_old_folder_byte_identical(tmp_path):
    target = _owned(tmp_path / "bundle")
    (target / "model.bin").write_bytes(b"\x00\x01 old weights")
    (target / "sub").mkdir()
    (target / "sub" / "notes.txt").write_text("old notes")
    before = _tree(target)
    with pytest.raises(KeyboardInterrupt):
        with atomic.directory(target, check=_only_if_owned) as staging:
            (staging / "model.bin").write_bytes(b"half of the new")
            raise KeyboardInterrupt
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["bundle"]
