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


# ----------------------------------------------- special files, reading, early checks

from digits.files import (  # noqa: E402
    NotRegularFile,
    check_writable,
    check_writable_directory,
    open_regular,
    refuse_special,
)


def special_files(tmp_path):
    from cli_helpers import char_device

    device = char_device(tmp_path / "null")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    directory = tmp_path / "dir"
    directory.mkdir()
    link = tmp_path / "link-to-null"
    link.symlink_to(device)
    link_dir = tmp_path / "link-to-dir"
    link_dir.symlink_to(directory)
    return {"a character device": device, "a FIFO": fifo, "a directory": directory,
            "link to a device": link, "link to a directory": link_dir}


def test_atomic_write_never_replaces_a_special_file(tmp_path):
    for what, path in special_files(tmp_path).items():
        with pytest.raises(ConfigError, match="not a regular file"):
            atomic_write(path, lambda f: f.write(b"x"))
        assert not os.path.isfile(path), what
    assert os.path.exists(path) and not os.path.isfile(tmp_path / "null")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_symlink_to_a_regular_file_or_nothing_may_be_replaced(tmp_path):
    (tmp_path / "target").write_bytes(b"old")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("link", "dangling"):
        refuse_special(tmp_path / name)
        atomic_write(tmp_path / name, lambda f: f.write(b"new"))
        assert (tmp_path / name).read_bytes() == b"new"


def test_open_regular_refuses_without_blocking(tmp_path):
    files = special_files(tmp_path)
    for path in (files["a FIFO"], files["a character device"], files["link to a device"]):
        with pytest.raises(NotRegularFile, match="not a regular file"):
            open_regular(path)
    with pytest.raises(IsADirectoryError):
        open_regular(files["a directory"])
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "none")
    (tmp_path / "f").write_bytes(b"data")
    with open_regular(tmp_path / "f") as f:
        assert f.read() == b"data"


def test_check_writable(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "m.npz", "--save")  # directories made
    assert (tmp_path / "new" / "deeper").is_dir() and not os.listdir(tmp_path / "new" / "deeper")
    (tmp_path / "file").write_text("")
    for path, words in (("", "the path is empty"), ("  ", "the path is empty"),
                        (tmp_path, "not a regular file"),
                        (tmp_path / "file" / "m.npz", "file"),
                        (special_files(tmp_path)["a character device"], "character device")):
        with pytest.raises(ConfigError, match=words):
            check_writable(path, "--save")
    with pytest.raises(ConfigError, match="not a directory"):
        check_writable_directory(tmp_path / "file", "--plots")
    check_writable_directory(tmp_path / "plots", "--plots")
    assert (tmp_path / "plots").is_dir()
