"""The IDX file format of MNIST and Fashion-MNIST: gzip-compressed or raw, into arrays.

A file is two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian 32-bit integer, then the values, big-endian. Every problem (a missing, empty,
truncated or corrupt file, trailing garbage) raises `DataError` naming the file and what
to do; no struct, gzip, zlib or OS error escapes.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from nets.errors import DataError

# IDX type byte -> big-endian element type, as in the format's definition.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_DAMAGED = "Delete it and download it again, or point --data-dir at an intact copy."


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, into an array of native byte order.

    Gzip is recognised by its magic bytes, not the name. MNIST files give uint8 arrays:
    images (n, 28, 28), labels (n,). Raises DataError for anything that is not a
    complete, well-formed IDX file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if not raw:
        raise DataError(f"{path}: file is empty. {_DAMAGED}")
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(path, raw)
    elif path.suffix == ".gz":
        raise DataError(
            f"{path}: named .gz but is not gzip-compressed (it starts with {raw[:4]!r}). "
            f"{_DAMAGED}"
        )
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes; `source` names the origin in error messages."""
    if len(raw) < 4:
        raise DataError(f"{source}: {len(raw)} bytes is too short for an IDX header. {_DAMAGED}")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(
            f"{source}: not an IDX file (magic bytes {raw[:4].hex(' ')}; expected "
            f"00 00, a type code among {', '.join(f'{c:02x}' for c in IDX_DTYPES)}, and 1-4 "
            f"dimensions). {_DAMAGED}"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{source}: truncated inside the IDX header. {_DAMAGED}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = _product(dims) * dtype.itemsize
    actual = len(raw) - header_len
    if actual != expected:
        problem = "truncated" if actual < expected else "has trailing garbage"
        raise DataError(
            f"{source}: {problem}: its header promises shape {dims} ({expected} data bytes) "
            f"but {actual} follow. {_DAMAGED}"
        )
    flat = np.frombuffer(raw, dtype=dtype, offset=header_len)
    try:
        # astype copies into native order, so the result is writable and owns its memory.
        return flat.astype(dtype.newbyteorder("=")).reshape(dims)
    except ValueError as error:  # a zero dimension beside absurdly large ones
        raise DataError(f"{source}: unusable IDX shape {dims} ({error}). {_DAMAGED}") from None


def _product(dims: tuple[int, ...]) -> int:
    # Python ints: a corrupt header must not overflow into a plausible byte count.
    total = 1
    for dim in dims:
        total *= dim
    return total


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected an IDX file.")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error}).") from None


def _gunzip(path: Path, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt or truncated gzip data ({error}). {_DAMAGED}") from None
