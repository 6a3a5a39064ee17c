"""A reader for IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a header followed by the array's bytes in C order, big-endian:

    byte 0, 1   zero
    byte 2      type code: 0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte 3      number of dimensions, ndim
    4 * ndim    the dimensions, each an unsigned big-endian 32-bit integer

So the MNIST "magic numbers" are this header's first four bytes read as one integer:
2051 = 0x00000803 (ubyte, 3 dimensions: images) and 2049 = 0x00000801 (ubyte,
1 dimension: labels). Files may be gzip-compressed; compression is detected from the
content (the gzip magic bytes 1f 8b), not from the file name.

This module needs only numpy and the standard library.
"""

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXFormatError", "read_idx"]

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXFormatError(ValueError):
    """A file is not a valid IDX file, or not the IDX file the caller expected.

    Raised for every problem `read_idx` finds: bad gzip data, a bad header, an unknown
    type code, a dimension count or element type other than the expected one, and a file
    whose size does not match its header (truncated, or with trailing bytes).

    Attributes:
        path: the offending file.
        reason: what is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Invalid IDX file {str(self.path)!r}: {reason}")


def read_idx(
    path: str | os.PathLike,
    *,
    ndim: int | None = None,
    dtype: np.dtype | type | str | None = None,
) -> np.ndarray:
    """Reads an IDX file (raw or gzip-compressed) into a numpy array.

    Args:
        path: the file. Gzip compression is detected from its first two bytes.
        ndim: the number of dimensions the caller expects (3 for MNIST images, 1 for
            labels), or None to accept any.
        dtype: the element type the caller expects (e.g. `np.uint8` for MNIST, type
            code 0x08), or None to accept any IDX type.

    Returns:
        A writable array in native byte order with the file's shape, e.g.
        `(num_images, rows, cols)` uint8 for an MNIST image file, `(num_labels,)` uint8
        for a label file.

    Raises:
        IDXFormatError: if the file is not valid gzip, its header is malformed (the first
            two bytes are not zero, the type code is unknown), its dimension count or
            type differs from `ndim`/`dtype`, or its size does not match the header.
            The message names the file.
        FileNotFoundError: if `path` does not exist.
        ValueError: if `ndim` is not a positive integer or `dtype` is not an IDX type.

    Example:

    >>> import gzip, struct, tempfile, numpy as np
    >>> from pathlib import Path
    >>> body = np.arange(6, dtype=np.uint8).tobytes()
    >>> path = Path(tempfile.mkdtemp()) / "a-idx2-ubyte.gz"
    >>> _ = path.write_bytes(gzip.compress(struct.pack(">HBBII", 0, 8, 2, 2, 3) + body))
    >>> read_idx(path, ndim=2, dtype=np.uint8)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    if ndim is not None and (isinstance(ndim, bool) or not isinstance(ndim, int) or ndim < 1):
        raise ValueError(f"Expected ndim to be a positive integer or None. Received: ndim={ndim!r}")
    expected_dtype = None
    if dtype is not None:
        expected_dtype = np.dtype(dtype).newbyteorder(">")
        if expected_dtype not in _IDX_DTYPES.values():
            raise ValueError(
                "Expected dtype to be one of the IDX element types "
                f"{sorted(str(d.newbyteorder('=')) for d in _IDX_DTYPES.values())} or None. "
                f"Received: dtype={dtype!r}"
            )

    path = Path(path)
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise IDXFormatError(path, f"corrupt or truncated gzip data ({error})") from error

    if len(data) < 4:
        raise IDXFormatError(path, f"file has {len(data)} bytes, too short for an IDX header")
    zero, type_code, file_ndim = struct.unpack(">HBB", data[:4])
    if zero != 0:
        raise IDXFormatError(
            path,
            "expected the header to start with two zero bytes. "
            f"Received: magic number {int.from_bytes(data[:4], 'big')} (0x{data[:4].hex()})",
        )
    if type_code not in _IDX_DTYPES:
        raise IDXFormatError(
            path,
            f"unknown element type code 0x{type_code:02X}; expected one of "
            f"{', '.join(f'0x{code:02X}' for code in _IDX_DTYPES)}",
        )
    file_dtype = _IDX_DTYPES[type_code]
    if expected_dtype is not None and file_dtype != expected_dtype:
        raise IDXFormatError(
            path,
            f"expected element type {expected_dtype.newbyteorder('=')} "
            f"(code 0x{_type_code(expected_dtype):02X}). Received: "
            f"{file_dtype.newbyteorder('=')} (code 0x{type_code:02X})",
        )
    if ndim is not None and file_ndim != ndim:
        raise IDXFormatError(
            path, f"expected {ndim} dimension(s). Received: {file_ndim} dimension(s)"
        )
    if file_ndim == 0:
        raise IDXFormatError(path, "header declares 0 dimensions")

    header_size = 4 + 4 * file_ndim
    if len(data) < header_size:
        raise IDXFormatError(
            path,
            f"truncated header: {file_ndim} dimensions need {header_size} header bytes, "
            f"file has {len(data)}",
        )
    shape = struct.unpack(f">{file_ndim}I", data[4:header_size])
    expected_size = header_size + int(np.prod(shape, dtype=np.int64)) * file_dtype.itemsize
    if len(data) < expected_size:
        raise IDXFormatError(
            path,
            f"truncated: header declares shape {shape} of {file_dtype.newbyteorder('=')}, "
            f"which needs {expected_size} bytes; file has {len(data)}",
        )
    if len(data) > expected_size:
        raise IDXFormatError(
            path,
            f"{len(data) - expected_size} trailing bytes after the data: header declares "
            f"shape {shape} of {file_dtype.newbyteorder('=')}, which needs {expected_size} "
            f"bytes; file has {len(data)}",
        )
    array = np.frombuffer(data, dtype=file_dtype, offset=header_size).reshape(shape)
    # astype copies: the result is writable and in native byte order.
    return array.astype(file_dtype.newbyteorder("="))


def _type_code(dtype: np.dtype) -> int:
    for code, candidate in _IDX_DTYPES.items():
        if candidate == dtype:
            return code
    raise ValueError(f"Expected an IDX element type. Received: dtype={dtype}")
