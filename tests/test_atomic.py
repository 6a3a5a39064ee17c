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


def test_directory_replaces_an_existing_folder(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    with atomic.directory(target) as staging:
        (staging / "fresh.txt").write_text("fresh")
    assert _tree(target) == {"fresh.txt": b"fresh"}
    assert os.listdir(tmp_path) == ["bundle"]


def test_directory_interrupted_leaves_the_old_folder_byte_identical(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "model.bin").write_bytes(b"\x00\x01 old weights")
    (target / "sub").mkdir()
    (target / "sub" / "notes.txt").write_text("old notes")
    before = _tree(target)
    with pytest.raises(KeyboardInterrupt):
        with atomic.directory(target) as staging:
            (staging / "model.bin").write_bytes(b"half of the new")
            raise KeyboardInterrupt
    assert _tree(target) == before
    assert os.listdir(tmp_path) == ["bundle"]
