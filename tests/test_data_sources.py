"""Tests for tfvae.data.sources: named datasets, file lookup, downloads and user data.

No test touches the network: `fetch_url` is replaced by fakes, and the default fake
fails as if offline.
"""

import dataclasses
import gzip
import hashlib
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import idx_bytes
from tfvae.data import (
    DATASETS,
    ChecksumError,
    DatasetNotFoundError,
    IDXFormatError,
    keras_cache_dir,
    load,
    register_dataset,
    sources,
)

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def fake_split(marker: int, n: int = 3):
    """Tiny MNIST-shaped images filled with `marker`, labels 0..n-1."""
    return np.full((n, 28, 28), marker, np.uint8), np.arange(n, dtype=np.uint8)


def write_split(folder: Path, marker: int, split: str = "train", compress: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = fake_split(marker)
    for name, array in zip(IDX_NAMES[split], (images, labels), strict=True):
        payload = idx_bytes(array)
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)


def offline(url):
    raise urllib.error.URLError(f"offline (test): {url}")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A private Keras home and no $TFVAE_DATA_DIR; the network is 'offline'."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(sources, "fetch_url", offline)


def files_under(folder: Path):
    return sorted(p.relative_to(folder) for p in folder.rglob("*")) if folder.exists() else []


# ---------------------------------------------------------------------------------------
# Names, splits, registry.


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar'") as info:
        load("cifar")
    for name in ("digits", "fashion_mnist", "mnist"):
        assert repr(name) in str(info.value)


def test_bad_split():
    with pytest.raises(ValueError, match=r"split to be one of \['train', 'test'\].*'valid'"):
        load("digits", split="valid")


def test_missing_path():
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load("no/such/nothing.npz")


def test_registering_twice_is_an_error():
    assert sorted(DATASETS) == ["digits", "fashion_mnist", "mnist"]
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("mnist", lambda split, data_dir: None)
    with pytest.raises(TypeError):
        DATASETS["other"] = None  # read-only view


@pytest.mark.slow
def test_loading_does_not_import_tensorflow():
    code = (
        "import sys; from tfvae.data import load; x, y = load('digits'); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------------------------------
# digits.


def test_digits_split_partitions_the_bundled_dataset():
    from sklearn.datasets import load_digits

    reference = load_digits()
    x_train, y_train = load("digits", "train")
    x_test, y_test = load("digits", "test")

    assert x_train.shape == (1500, 8, 8, 1) and x_test.shape == (297, 8, 8, 1)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert x_train.min() == 0 and x_train.max() == 16
    # The two splits are exactly the documented permutation of the 1,797 images.
    test_indices = np.sort(np.random.default_rng(0).permutation(1797)[:297])
    train_indices = np.setdiff1d(np.arange(1797), test_indices)
    np.testing.assert_array_equal(x_test[..., 0], reference.images[test_indices])
    np.testing.assert_array_equal(y_test, reference.target[test_indices])
    np.testing.assert_array_equal(x_train[..., 0], reference.images[train_indices])
    np.testing.assert_array_equal(y_train, reference.target[train_indices])
    # As multisets of (image, label) rows, train + test is the whole dataset.
    rows = np.concatenate([x_train.reshape(1500, 64), x_test.reshape(297, 64)])
    labels = np.concatenate([y_train, y_test])[:, None]
    ours = np.concatenate([rows, labels], axis=1)
    full = np.concatenate([reference.data, reference.target[:, None]], axis=1).astype(np.int64)
    np.testing.assert_array_equal(np.unique(ours, axis=0), np.unique(full, axis=0))
    assert len(ours) == len(full) == 1797


def test_digits_is_deterministic():
    first, second = load("digits", "test"), load("digits", "test")
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


# ---------------------------------------------------------------------------------------
# Local lookup.


def test_lookup_order(tmp_path, monkeypatch):
    given, env = tmp_path / "given", tmp_path / "env"
    write_split(given, marker=1)
    write_split(env / "mnist", marker=2)  # $TFVAE_DATA_DIR/<name>/
    write_split(keras_cache_dir() / "mnist", marker=3, compress=False)
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(env))

    assert load("mnist", data_dir=given)[0].max() == 1
    assert load("mnist")[0].max() == 2
    monkeypatch.delenv(sources.DATA_DIR_ENV)
    assert load("mnist")[0].max() == 3


def test_keras_cache_defaults_to_home(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert keras_cache_dir() == tmp_path / "home" / ".keras" / "datasets"
    write_split(tmp_path / "home" / ".keras" / "datasets" / "fashion_mnist", marker=4)
    x, y = load("fashion_mnist")
    assert x.shape == (3, 28, 28, 1) and x.max() == 4
    np.testing.assert_array_equal(y, [0, 1, 2])
    assert y.dtype == np.int64


def test_folder_needs_both_files_of_the_split(tmp_path):
    given = tmp_path / "given"
    write_split(given, marker=1)
    (given / "train-labels-idx1-ubyte.gz").unlink()  # incomplete: skipped
    write_split(keras_cache_dir() / "mnist", marker=3)
    assert load("mnist", data_dir=given)[0].max() == 3


def test_corrupt_local_file_names_the_file(tmp_path):
    write_split(tmp_path, marker=1, split="test")
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(IDXFormatError, match="truncated") as info:
        load("mnist", "test", data_dir=tmp_path)
    assert str(path) in str(info.value)


def test_offline_without_copy_lists_searched_folders(tmp_path, monkeypatch):
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load("mnist", data_dir=tmp_path / "given")
    message = str(info.value)
    expected = [
        tmp_path / "given" / "mnist",
        tmp_path / "given",
        tmp_path / "env" / "mnist",
        tmp_path / "env",
        tmp_path / "keras_home" / "datasets" / "mnist",
    ]
    assert list(info.value.searched) == expected
    for folder in expected:
        assert str(folder) in message
    assert "TFVAE_DATA_DIR" in message and "data_dir=" in message
    assert "https://storage.googleapis.com/cvdf-datasets/mnist/" in message
    assert files_under(keras_cache_dir()) == []


# ---------------------------------------------------------------------------------------
# Downloads (fake network).


def fake_mirror(files: dict[str, bytes], calls: list[str]):
    def fetch(url):
        calls.append(url)
        return files[url.rsplit("/", 1)[1]]

    return fetch


def test_download_with_verified_checksum(monkeypatch):
    images, labels = fake_split(marker=7)
    raw = {IDX_NAMES["train"][0]: idx_bytes(images), IDX_NAMES["train"][1]: idx_bytes(labels)}
    dataset = dataclasses.replace(
        DATASETS["mnist"],
        name="tiny",
        mirrors=("https://example.invalid/tiny/",),
        checksums={name: hashlib.sha256(data).hexdigest() for name, data in raw.items()},
    )
    calls = []
    # mtime=0 and a different compression level: a "mirror" with its own gzip wrapping.
    served = {f"{k}.gz": gzip.compress(v, compresslevel=1, mtime=0) for k, v in raw.items()}
    monkeypatch.setattr(sources, "fetch_url", fake_mirror(served, calls))

    x, y = dataset("train", None)

    assert calls == [f"https://example.invalid/tiny/{name}.gz" for name in IDX_NAMES["train"]]
    np.testing.assert_array_equal(x[..., 0], images)
    np.testing.assert_array_equal(y, labels)
    assert files_under(keras_cache_dir() / "tiny") == [
        Path(f"{name}.gz") for name in sorted(IDX_NAMES["train"])
    ]
    # Second call: found in the cache, no download.
    dataset("train", None)
    assert len(calls) == 2


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_download_with_wrong_checksum_leaves_nothing(monkeypatch, name):
    images, labels = fake_split(marker=9)
    served = {
        f"{IDX_NAMES['test'][0]}.gz": gzip.compress(idx_bytes(images)),
        f"{IDX_NAMES['test'][1]}.gz": gzip.compress(idx_bytes(labels)),
    }
    calls = []
    monkeypatch.setattr(sources, "fetch_url", fake_mirror(served, calls))

    with pytest.raises(ChecksumError, match="Checksum mismatch") as info:
        load(name, "test")

    error = info.value
    assert error.expected == DATASETS[name].checksums[IDX_NAMES["test"][0]]
    assert error.received != error.expected
    # Every mirror was tried, and nothing at all (not even a temporary file) was written.
    assert calls == [f"{base}{IDX_NAMES['test'][0]}.gz" for base in DATASETS[name].mirrors]
    assert files_under(keras_cache_dir()) == []


@pytest.fixture
def shared_mnist():
    if not all(
        (SHARED_MNIST / f"{name}.gz").is_file() for pair in IDX_NAMES.values() for name in pair
    ):
        pytest.skip(f"reference MNIST copy not found at {SHARED_MNIST}")
    return SHARED_MNIST


def test_real_mnist(shared_mnist):
    sums = dict(
        reversed(line.split()) for line in (shared_mnist / "SHA256SUMS").read_text().splitlines()
    )
    assert len(sums) == 4
    for name, expected in sums.items():
        assert hashlib.sha256((shared_mnist / name).read_bytes()).hexdigest() == expected

    x_train, y_train = load("mnist", "train", data_dir=shared_mnist)
    x_test, y_test = load("mnist", "test", data_dir=shared_mnist)
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert y_train[0] == 5 and y_test[0] == 7
    assert x_train.max() == 255 and x_train.min() == 0
    # Published class counts of the MNIST splits.
    np.testing.assert_array_equal(
        np.bincount(y_train), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )
    np.testing.assert_array_equal(
        np.bincount(y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    # Against a direct parse of the file: 16 header bytes, then the pixels.
    raw = gzip.decompress((shared_mnist / "t10k-images-idx3-ubyte.gz").read_bytes())
    np.testing.assert_array_equal(x_test.reshape(-1), np.frombuffer(raw, np.uint8, offset=16))


def test_mnist_download_checksums_match_reference_files(shared_mnist, monkeypatch):
    """The hard-coded checksums accept the real files, even in a different gzip wrapping."""
    served = {
        f"{name}.gz": (shared_mnist / f"{name}.gz").read_bytes()
        for pair in IDX_NAMES.values()
        for name in pair
    }
    for name, gz in served.items():
        digest = hashlib.sha256(gzip.decompress(gz)).hexdigest()
        assert DATASETS["mnist"].checksums[name.removesuffix(".gz")] == digest
    calls = []
    monkeypatch.setattr(sources, "fetch_url", fake_mirror(served, calls))
    x, y = load("mnist", "test")
    assert calls == [
        f"https://storage.googleapis.com/cvdf-datasets/mnist/{name}.gz"
        for name in IDX_NAMES["test"]
    ]
    assert x.shape == (10000, 28, 28, 1) and y[0] == 7
    for name in IDX_NAMES["test"]:
        cached = keras_cache_dir() / "mnist" / f"{name}.gz"
        assert cached.read_bytes() == served[f"{name}.gz"]


# ---------------------------------------------------------------------------------------
# User data.


def test_npy_gets_channel_axis_and_zero_labels(tmp_path):
    x = np.random.default_rng(1).random((4, 5, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got_x, got_y = load(str(tmp_path / "x.npy"))
    np.testing.assert_array_equal(got_x, x[..., None])
    assert got_x.dtype == np.float32
    np.testing.assert_array_equal(got_y, np.zeros(4))
    assert got_y.dtype == np.int64


def test_npz_with_and_without_labels(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (6, 3, 3, 2), dtype=np.uint8)
    y = rng.integers(0, 10, 6).astype(np.int32)
    np.savez(tmp_path / "xy.npz", x=x, y=y)
    np.savez(tmp_path / "x.npz", x=x)

    got_x, got_y = load(tmp_path / "xy.npz", split="test")  # no split: same arrays
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    assert got_y.dtype == np.int64
    np.testing.assert_array_equal(load(tmp_path / "x.npz")[1], np.zeros(6))


def test_npz_with_splits(tmp_path):
    x_train, x_test = np.zeros((5, 4, 4), np.uint8), np.ones((2, 4, 4), np.uint8)
    np.savez(tmp_path / "s.npz", x_train=x_train, y_train=np.arange(5), x_test=x_test)
    assert load(tmp_path / "s.npz", "train")[0].shape == (5, 4, 4, 1)
    np.testing.assert_array_equal(load(tmp_path / "s.npz", "train")[1], np.arange(5))
    x, y = load(tmp_path / "s.npz", "test")
    np.testing.assert_array_equal(x, x_test[..., None])
    np.testing.assert_array_equal(y, [0, 0])


def test_bad_user_arrays(tmp_path):
    np.savez(tmp_path / "len.npz", x=np.zeros((3, 2, 2)), y=np.arange(4))
    with pytest.raises(ValueError, match=r"shape \(3,\).*Received: shape \(4,\)"):
        load(tmp_path / "len.npz")
    np.save(tmp_path / "rank.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"Received: shape \(3, 2\)"):
        load(tmp_path / "rank.npy")
    np.savez(tmp_path / "keys.npz", images=np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"Received keys: \['images'\]"):
        load(tmp_path / "keys.npz")
    np.savez(tmp_path / "labels.npz", x=np.zeros((2, 2, 2)), y=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="integer labels"):
        load(tmp_path / "labels.npz")


def save_png(path: Path, array: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_png_folder_greyscale_round_trip(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, (3, 7, 5), dtype=np.uint8)
    for i, image in enumerate(images):
        save_png(tmp_path / "pngs" / f"{i:02d}.png", image)
    (tmp_path / "pngs" / "notes.txt").write_text("ignored")

    x, y = load(tmp_path / "pngs")

    np.testing.assert_array_equal(x, images[..., None])  # [3, 7, 5, 1]
    np.testing.assert_array_equal(y, [0, 0, 0])
    assert x.dtype == np.uint8 and y.dtype == np.int64


def test_png_class_subfolders_rgb(tmp_path):
    rng = np.random.default_rng(4)
    expected_x, expected_y = [], []
    for label, name in enumerate(["ant", "bee", "cat"]):  # sorted order gives the label
        for i in range(label + 1):
            image = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
            save_png(tmp_path / "classes" / name / f"{i}.png", image)
            expected_x.append(image)
            expected_y.append(label)

    x, y = load(tmp_path / "classes")

    np.testing.assert_array_equal(x, np.stack(expected_x))  # [6, 4, 6, 3]
    np.testing.assert_array_equal(y, expected_y)


def test_png_mismatched_sizes_name_the_file(tmp_path):
    save_png(tmp_path / "pngs" / "a.png", np.zeros((8, 8), np.uint8))
    save_png(tmp_path / "pngs" / "b.png", np.zeros((9, 8), np.uint8))
    with pytest.raises(ValueError, match=r"size \(8, 8\).*Received: size \(8, 9\)") as info:
        load(tmp_path / "pngs")
    assert str(tmp_path / "pngs" / "b.png") in str(info.value)


def test_png_mixed_modes_and_unsupported_modes(tmp_path):
    save_png(tmp_path / "mixed" / "a.png", np.zeros((4, 4), np.uint8))
    save_png(tmp_path / "mixed" / "b.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="mode 'RGB'.*b.png"):
        load(tmp_path / "mixed")
    save_png(tmp_path / "rgba" / "a.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="mode 'RGBA'"):
        load(tmp_path / "rgba")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="Expected PNG images"):
        load(str(tmp_path / "empty") + os.sep)
