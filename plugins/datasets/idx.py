"""Reading IDX files, the format MNIST and Fashion-MNIST ship in (LeCun et al. 1998), gzipped or not.

Layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then each dimension as
a big-endian uint32, then the data. Images are magic 2051 (0x00000803: ubyte, 3 dims N x rows x cols),
labels magic 2049 (0x00000801: ubyte, 1 dim N). Every problem is a one-line DatasetError naming the file.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from workbench.errors import DatasetError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
# IDX type byte -> numpy dtype (multi-byte values are big-endian)
IDX_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (recognised by content, not by name)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{path} is a corrupted or truncated gzip file ({exc}); download it again") from None
    return data


def read_idx(path: Path, expected_magic: int | None = None) -> np.ndarray:
    """The array in an IDX file (optionally gzipped), checked against the header."""
    path = Path(path)
    data = read_bytes(path)
    what = {IMAGES_MAGIC: " (expected 2051 for images)", LABELS_MAGIC: " (expected 2049 for labels)"}.get(expected_magic, "")
    if len(data) < 4:
        raise DatasetError(f"{path} is truncated: {len(data)} bytes, not even an IDX header; download it again")
    magic = struct.unpack(">I", data[:4])[0]
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\0\0" or type_code not in IDX_DTYPES or ndim == 0 or (expected_magic and magic != expected_magic):
        raise DatasetError(f"{path} is not an IDX file of the expected kind: bad magic number {magic}{what}; "
                           "it is corrupted or a different file, download it again")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path} is truncated inside its IDX header; download it again")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = IDX_DTYPES[type_code]
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        problem = "truncated" if len(data) - header < expected else "longer than its header says"
        raise DatasetError(f"{path} is {problem}: its header promises {'x'.join(map(str, dims))} values "
                           f"({expected} bytes) but it holds {len(data) - header} bytes; download it again")
    return np.frombuffer(data, dtype=dtype, count=math.prod(dims), offset=header).reshape(dims)


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 (N, rows, cols) from an IDX image file."""
    return read_idx(path, IMAGES_MAGIC)


def read_idx_labels(path: Path) -> np.ndarray:
    """uint8 (N,) from an IDX label file."""
    return read_idx(path, LABELS_MAGIC)


def write_idx(path: Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write a uint8 array as IDX (gzipped when `compress`, or when the name ends in .gz). Tests and tools use
    this to make files exactly as MNIST ships them."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
