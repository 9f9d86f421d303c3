"""The one way this project writes a file: atomically.

`atomic_write(path, write)` calls `write(f)` on a temporary file in the same directory,
fsyncs it, `os.replace`s it onto `path` and fsyncs the directory. A reader, or a crash at
any moment, sees the old file or the complete new one, never a mix. When `write` raises,
the temporary file is removed and the exception propagates: a downloader refuses a file
whose checksum is wrong this way, and a model that cannot be encoded leaves the old file
alone. A process killed mid-write may leave a `.<name>.*.tmp` file behind, never a
damaged one under the real name.

Downloads, checkpoints and model files all go through here.
"""

from __future__ import annotations

import os
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
