"""The one way this project writes a file: atomically.

`atomic_write(path, write)` calls `write(f)` on a temporary file in the same directory,
fsyncs it, `os.replace`s it onto `path` and fsyncs the directory. A reader, or a crash at
any moment, sees the old file or the complete new one, never a mix. When `write` raises,
the temporary file is removed and the exception propagates: a downloader refuses a file
whose checksum is wrong this way, and a model that cannot be encoded leaves the old file
alone. A process killed mid-write may leave a `.<name>.*.tmp` file behind, never a
damaged one under the real name.

Downloads, checkpoints and model files all go through here. `atomic_write` never replaces
anything that is not a regular file (a device such as /dev/null, a FIFO, a directory, or a
symlink to one of those): it refuses with ConfigError instead.

Reading goes through `open_regular`, which opens without blocking and checks the file type
on the open descriptor, so that a FIFO or device given as a model, checkpoint, photo or
pickle is refused at once instead of hanging or being read forever. `check_writable` is
the early check of an output path, before a run spends time on anything.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from nets.errors import ConfigError


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Write `path` through `write(f)`, all or nothing. Raises OSError when the directory is
    missing or not writable or the disk is full (the previous file is then unchanged), and
    whatever `write` raises."""
    path = os.fspath(path)
    refuse_special(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def file_kind(mode: int) -> str:
    """What a file of this st_mode is, in words."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def refuse_special(path: str | os.PathLike[str], what: str = "refusing to write") -> None:
    """ConfigError when `path` exists (through symlinks) and is not a regular file: such a
    thing (/dev/null, a FIFO, a directory) is never replaced by a file of ours."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:  # nothing there, or a dangling symlink: nothing to destroy
        return
    except OSError as error:
        raise ConfigError(f"cannot use {os.fspath(path)!r}: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{what} {os.fspath(path)}: it is {file_kind(mode)}, not a regular "
                          "file; give the path of a file")


def check_writable(path: str | os.PathLike[str], what: str) -> None:
    """ConfigError unless a file can be written at `path` (for the flag `what`): the path is
    not empty, not a directory or other special file, and its directory exists (or is
    created now) and takes a new file. Run before training, so that nothing fails at the end.
    """
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{what}: the path is empty; give a file name")
    refuse_special(text, what)
    make_parent(text)
    directory = os.path.dirname(os.path.abspath(text))
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(f"{what} {text}: cannot write in {directory} "
                          f"({error.strerror or error})") from None


def check_writable_directory(path: str | os.PathLike[str], what: str) -> None:
    """ConfigError unless `path` is (or can be made) a directory that takes new files."""
    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{what}: the path is empty; give a directory")
    if os.path.exists(text) and not os.path.isdir(text):
        raise ConfigError(f"{what} {text}: it is {file_kind(os.stat(text).st_mode)}, not a "
                          "directory")
    check_writable(os.path.join(text, "probe"), what)


def open_regular(path: str | os.PathLike[str]):
    """Open `path` for binary reading, only if it is a regular file. Opening does not block
    (a FIFO would wait for a writer); the type is checked on the open descriptor. Raises
    FileNotFoundError, IsADirectoryError, PermissionError, or `NotRegularFile`."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "is a directory", os.fspath(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"{os.fspath(path)} is {file_kind(mode)}, not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class NotRegularFile(OSError):
    """A path to read is a FIFO, a device or a socket."""


def make_parent(path: str | os.PathLike[str]) -> None:
    """Create the directory `path` goes in, if missing; ConfigError when impossible."""
    directory = Path(path).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the directory {directory}: {error.strerror}") from None


def write_error(path: str | os.PathLike[str], error: OSError) -> str:
    """The one-line explanation of an OSError from `atomic_write`."""
    directory = os.path.dirname(os.path.abspath(path))
    return (f"cannot write {os.fspath(path)}: {error.strerror or error}; check that {directory} "
            "exists and is writable and that the disk has space (any previous file there is "
            "unchanged)")


def _umask() -> int:
    # mkstemp creates files 0600; a saved file should get the usual permissions instead.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable; directories cannot be opened this way on Windows.
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
