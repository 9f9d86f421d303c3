"""digits.files: the one atomic writer, and directories made on the way."""

import os

import pytest

from digits.files import atomic_write, make_parent, write_error
from nets.errors import ConfigError


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.bin"]
    assert (path.stat().st_mode & 0o777) == 0o666 & ~_umask()


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_missing_directory_and_its_message(tmp_path):
    path = tmp_path / "nowhere" / "f.bin"
    with pytest.raises(OSError) as info:
        atomic_write(path, lambda f: f.write(b"x"))
    assert "cannot write" in write_error(path, info.value) and "nowhere" in write_error(
        path, info.value)
    make_parent(path)
    atomic_write(path, lambda f: f.write(b"x"))
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="cannot create the directory"):
        make_parent(tmp_path / "a-file" / "f.bin")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
