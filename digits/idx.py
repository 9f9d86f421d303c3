"""The IDX file format of MNIST and Fashion-MNIST: gzip-compressed or raw, into arrays.

A file is two zero bytes, a type code, the number of dimensions, each dimension as a
big-endian 32-bit integer, then the values, big-endian. Every problem (a missing, empty,
truncated or corrupt file, trailing garbage) raises `DataError` naming the file and what
to do; no struct, gzip, zlib or OS error escapes.

Sizes are never taken on trust: gzip data is decompressed as a stream, the header first,
and decompression stops as soon as more bytes come out than the header promises (a small
gzip bomb cannot expand to gigabytes); a header promising more than
`digits.limits.memory_limit()` is refused before any data is read.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from digits.files import NotRegularFile, open_regular
from digits.limits import format_bytes, memory_limit
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
    _check_promise(raw[:20], str(path))
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


def _promised_size(header: bytes) -> int | None:
    """The total size (header and data) the first bytes of an IDX file promise, or None
    when they are too short or malformed (parse_idx then says what is wrong)."""
    if len(header) < 4 or header[2] not in IDX_DTYPES or not 1 <= header[3] <= 4:
        return None
    ndim = header[3]
    if len(header) < 4 + 4 * ndim:
        return None
    dims = (int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return 4 + 4 * ndim + _product(tuple(dims)) * IDX_DTYPES[header[2]].itemsize


def _check_promise(header: bytes, source: str) -> None:
    promised = _promised_size(header)
    if promised is not None and promised > memory_limit():
        raise DataError(f"{source}: its IDX header promises {format_bytes(promised)} of data, "
                        f"more than the {format_bytes(memory_limit())} this machine allows. "
                        f"{_DAMAGED}")


def _product(dims: tuple[int, ...]) -> int:
    # Python ints: a corrupt header must not overflow into a plausible byte count.
    total = 1
    for dim in dims:
        total *= dim
    return total


def _read_bytes(path: Path) -> bytes:
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > memory_limit():
                raise DataError(f"{path}: {format_bytes(size)} is more than the "
                                f"{format_bytes(memory_limit())} this machine allows.")
            return f.read()
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected an IDX file.") from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except NotRegularFile as error:
        raise DataError(f"{error}; expected an IDX file.") from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error}).") from None


_CHUNK = 2**20


def _gunzip(path: Path, raw: bytes) -> bytes:
    """Decompress every gzip member of `raw`, stopping as soon as the output passes what
    the IDX header (in the first decompressed bytes) promises."""
    out, limit, data = bytearray(), None, raw
    try:
        while data:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            while not stream.eof:
                room = _CHUNK if limit is None else limit + 1 - len(out)
                chunk = stream.decompress(data, max(room, 1))
                data = stream.unconsumed_tail
                out += chunk
                if limit is None and len(out) >= 20:
                    _check_promise(bytes(out[:20]), str(path))
                    limit = _promised_size(bytes(out[:20]))
                if limit is not None and len(out) > limit:
                    raise DataError(f"{path}: the gzip data holds more than the "
                                    f"{limit} bytes its IDX header promises. {_DAMAGED}")
                if not data and not chunk and not stream.eof:
                    raise DataError(f"{path}: corrupt or truncated gzip data (it ends inside "
                                    f"the compressed stream). {_DAMAGED}")
            data = stream.unused_data
    except zlib.error as error:
        raise DataError(f"{path}: corrupt or truncated gzip data ({error}). {_DAMAGED}") from None
    return bytes(out)
