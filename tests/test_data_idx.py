"""Tests for tfvae.data.idx: the IDX reader, on files written here byte by byte."""

import gzip
import struct

import numpy as np
import pytest

from tests.helpers import idx_bytes
from tfvae.data.idx import IDXFormatError, read_idx


def write(path, payload: bytes, compress: bool):
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_images_and_labels(tmp_path, images, compress):
    labels = np.array([5, 0, 4, 1, 9], dtype=np.uint8)
    image_path = write(tmp_path / "images", idx_bytes(images), compress)
    label_path = write(tmp_path / "labels", idx_bytes(labels), compress)

    got_images = read_idx(image_path, ndim=3, dtype=np.uint8)
    got_labels = read_idx(label_path, ndim=1, dtype=np.uint8)

    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 28, 28)
    assert got_images.flags.writeable


def test_mnist_magic_numbers_are_the_header(tmp_path, images):
    # 2051 and 2049 are the first four header bytes of ubyte 3-d / 1-d files.
    assert int.from_bytes(idx_bytes(images)[:4], "big") == 2051
    assert int.from_bytes(idx_bytes(np.zeros(3, np.uint8))[:4], "big") == 2049


def test_gzip_is_detected_by_content_not_name(tmp_path, images):
    raw_named_gz = write(tmp_path / "raw.gz", idx_bytes(images), compress=False)
    gzip_named_raw = write(tmp_path / "compressed-idx3-ubyte", idx_bytes(images), compress=True)
    np.testing.assert_array_equal(read_idx(raw_named_gz), images)
    np.testing.assert_array_equal(read_idx(gzip_named_raw), images)


@pytest.mark.parametrize(
    "dtype, code",
    [(np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)],
)
def test_reads_other_element_types_big_endian(tmp_path, dtype, code):
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype) * dtype(3)
    path = write(tmp_path / "array", idx_bytes(array, code), compress=False)
    got = read_idx(path, ndim=3, dtype=dtype)
    assert got.dtype == np.dtype(dtype)  # native byte order
    np.testing.assert_array_equal(got, array)


def assert_format_error(path, match, **kwargs):
    with pytest.raises(IDXFormatError, match=match) as info:
        read_idx(path, **kwargs)
    assert str(path) in str(info.value)
    assert info.value.path == path
    return info.value


@pytest.mark.parametrize("compress", [True, False])
def test_truncated_data(tmp_path, images, compress):
    path = write(tmp_path / "short", idx_bytes(images)[:-1], compress)
    assert_format_error(path, "truncated.*needs 3936 bytes; file has 3935")


@pytest.mark.parametrize("compress", [True, False])
def test_trailing_bytes(tmp_path, images, compress):
    path = write(tmp_path / "long", idx_bytes(images) + b"\x00\x00", compress)
    assert_format_error(path, "2 trailing bytes")


def test_truncated_gzip_stream(tmp_path, images):
    payload = gzip.compress(idx_bytes(images))
    path = tmp_path / "cut.gz"
    path.write_bytes(payload[: len(payload) // 2])
    assert_format_error(path, "gzip")


def test_truncated_header(tmp_path):
    path = write(tmp_path / "header", struct.pack(">HBBI", 0, 8, 3, 60000), compress=False)
    assert_format_error(path, "truncated header")
    tiny = write(tmp_path / "tiny", b"\x00\x00", compress=False)
    assert_format_error(tiny, "too short")


def test_wrong_magic(tmp_path, images):
    payload = bytearray(idx_bytes(images))
    payload[0:2] = b"\x08\x03"  # e.g. a little-endian writer
    path = write(tmp_path / "magic", bytes(payload), compress=True)
    assert_format_error(path, "two zero bytes")


def test_unknown_type_code(tmp_path, images):
    path = write(tmp_path / "type", idx_bytes(images, type_code=0x07), compress=False)
    assert_format_error(path, "unknown element type code 0x07")


def test_unexpected_type(tmp_path):
    array = np.zeros((2, 2), np.float32)
    path = write(tmp_path / "float", idx_bytes(array, 0x0D), compress=False)
    assert_format_error(path, "expected element type uint8", dtype=np.uint8)


def test_wrong_dimension_count(tmp_path, images):
    path = write(tmp_path / "images", idx_bytes(images), compress=True)
    assert_format_error(path, r"expected 1 dimension\(s\). Received: 3", ndim=1)


def test_invalid_arguments(tmp_path, images):
    path = write(tmp_path / "images", idx_bytes(images), compress=False)
    with pytest.raises(ValueError, match="ndim"):
        read_idx(path, ndim=0)
    with pytest.raises(ValueError, match="dtype"):
        read_idx(path, dtype=np.complex64)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")
