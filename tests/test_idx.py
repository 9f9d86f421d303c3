"""Tests for digits.idx: reading IDX files, and refusing damaged ones with a clear error."""

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from idx_helpers import IDX_CODES, idx_bytes, write_idx

from digits import idx as data
from nets.errors import DataError


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A directory hypothesis tests may reuse across examples."""
    return tmp_path_factory.mktemp("scratch")


def messages(excinfo) -> str:
    return str(excinfo.value)


# ---------------------------------------------------------------------------- read_idx


@settings(max_examples=60)
@given(
    array=arrays(
        dtype=st.sampled_from(list(IDX_CODES)),
        shape=array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    compress=st.booleans(),
)
def test_write_read_round_trip(scratch, array, compress):
    path = write_idx(scratch / ("rt.gz" if compress else "rt.idx"), array, gzip=compress)
    result = data.read_idx(path)
    assert result.dtype == array.dtype and result.dtype.isnative
    assert result.shape == array.shape
    np.testing.assert_array_equal(result, array)
    assert result.flags.writeable


def test_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "images.idx"
    path.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(data.read_idx(path), array)


def test_big_endian_multibyte_values(tmp_path):
    array = np.array([1, -2, 70000, -(2**31)], dtype=np.int32)
    raw = data.read_idx(write_idx(tmp_path / "a.idx", array, gzip=False))
    assert raw.tolist() == array.tolist()


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found") as excinfo:
        data.read_idx(tmp_path / "nope.gz")
    assert "nope.gz" in messages(excinfo)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        data.read_idx(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "e.gz").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        data.read_idx(tmp_path / "e.gz")


def test_truncated_gzip(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    path = tmp_path / "t.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="gzip") as excinfo:
        data.read_idx(path)
    assert "t.gz" in messages(excinfo)


def test_corrupt_gzip_body(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32))))
    packed[-12] ^= 0xFF  # inside the deflate stream or the CRC
    path = tmp_path / "c.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError, match="gzip"):
        data.read_idx(path)


def test_non_gzip_named_gz(tmp_path):
    path = write_idx(tmp_path / "plain.gz", np.zeros(3, np.uint8), gzip=False)
    with pytest.raises(DataError, match="not gzip-compressed") as excinfo:
        data.read_idx(path)
    assert "plain.gz" in messages(excinfo)


@pytest.mark.parametrize(
    "header",
    [
        b"\x01\x00\x08\x01",  # first byte not zero
        b"\x00\x01\x08\x01",  # second byte not zero
        b"\x00\x00\x0a\x01",  # unknown type code
        b"\x00\x00\x08\x00",  # zero dimensions
        b"\x00\x00\x08\x05",  # five dimensions
        b"PK\x03\x04",  # a zip file
    ],
)
def test_wrong_idx_magic(tmp_path, header):
    path = tmp_path / "m.idx"
    path.write_bytes(header + b"\x00\x00\x00\x01\x07")
    with pytest.raises(DataError, match="not an IDX file") as excinfo:
        data.read_idx(path)
    assert "m.idx" in messages(excinfo)


@pytest.mark.parametrize(
    ("payload", "problem"), [(9, "truncated"), (11, "trailing garbage")]
)
def test_dims_disagree_with_byte_count(tmp_path, payload, problem):
    path = tmp_path / "d.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"x" * payload))
    with pytest.raises(DataError, match=problem) as excinfo:
        data.read_idx(path)
    assert "d.gz" in messages(excinfo) and "(10,)" in messages(excinfo)


def test_truncated_header(tmp_path):
    path = tmp_path / "h.idx"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(DataError, match="header"):
        data.read_idx(path)


def test_zero_dim_beside_huge_dims(tmp_path):
    path = tmp_path / "z.idx"
    path.write_bytes(b"\x00\x00\x08\x04" + b"\x00" * 4 + b"\xff" * 12)
    with pytest.raises(DataError, match="shape"):
        data.read_idx(path)


# ---------------------------------------------------------------------------- fuzzing


@st.composite
def damaged_idx_files(draw):
    """(bytes, file name): random bytes, or a valid IDX file bit-flipped/cut/extended."""
    kind = draw(st.sampled_from(["random", "bitflip", "truncate", "extend"]))
    if kind == "random":
        prefix = draw(st.sampled_from([b"", b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"\x00\x00\x08\x01"]))
        blob = prefix + draw(st.binary(max_size=120))
    else:
        array = draw(
            arrays(
                dtype=st.sampled_from(list(IDX_CODES)),
                shape=array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4),
            )
        )
        blob = idx_bytes(array)
        if draw(st.booleans()):
            blob = gzip.compress(blob, mtime=0)
        if kind == "bitflip":
            position = draw(st.integers(0, len(blob) * 8 - 1))
            flipped = bytearray(blob)
            flipped[position // 8] ^= 1 << (position % 8)
            blob = bytes(flipped)
        elif kind == "truncate":
            blob = blob[: draw(st.integers(0, len(blob) - 1))]
        else:
            blob = blob + draw(st.binary(min_size=1, max_size=16))
    return blob, draw(st.sampled_from(["f.gz", "f.idx", "f"]))


@settings(max_examples=300)
@given(case=damaged_idx_files())
def test_fuzz_read_idx_returns_array_or_data_error(scratch, case):
    blob, name = case
    path = scratch / name
    path.write_bytes(blob)
    try:
        result = data.read_idx(path)
    except DataError as error:
        assert str(path) in str(error)
    else:
        assert isinstance(result, np.ndarray)


# ------------------------------------------------------------------- untrusted sizes


def test_a_gzip_bomb_stops_at_the_promised_size(tmp_path, monkeypatch):
    # A header promising 10 labels, followed by 50 MB of zeros that compress to ~50 kB.
    import zlib as zlib_module

    calls = []
    real = zlib_module.decompressobj

    class Counting:
        def __init__(self, *args):
            self.inner = real(*args)

        def decompress(self, data, max_length=0):
            out = self.inner.decompress(data, max_length)
            calls.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    bomb = tmp_path / "labels.gz"
    bomb.write_bytes(gzip.compress(idx_bytes(np.zeros(10, np.uint8)) + bytes(50 * 2**20)))
    assert bomb.stat().st_size < 200_000
    monkeypatch.setattr(data.zlib, "decompressobj", Counting)
    with pytest.raises(DataError, match="more than the 18 bytes its IDX header promises"):
        data.read_idx(bomb)
    assert sum(calls) < 2**21  # stopped within about a chunk of the promise


def test_a_header_promising_more_than_memory_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITS_MEMORY_LIMIT", "1M")
    header = b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (60000, 280, 280))
    for gz in (True, False):
        path = tmp_path / ("images.gz" if gz else "images")
        path.write_bytes(gzip.compress(header + bytes(1000)) if gz else header + bytes(1000))
        with pytest.raises(DataError, match="promises 4.4 GiB of data, more than the 1.0 MiB"):
            data.read_idx(path)


def test_a_raw_file_larger_than_memory_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITS_MEMORY_LIMIT", "1K")
    path = write_idx(tmp_path / "big", np.zeros((3, 28, 28), np.uint8), gzip=False)
    with pytest.raises(DataError, match="more than the 1.0 KiB"):
        data.read_idx(path)


def test_concatenated_gzip_members_still_read(tmp_path):
    raw = idx_bytes(np.arange(100, dtype=np.uint8))
    path = tmp_path / "two-members.gz"
    path.write_bytes(gzip.compress(raw[:30]) + gzip.compress(raw[30:]))
    assert np.array_equal(data.read_idx(path), np.arange(100, dtype=np.uint8))


def test_a_fifo_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "train-labels-idx1-ubyte.gz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="FIFO"):
        data.read_idx(fifo)
