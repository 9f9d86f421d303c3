"""Downloading one file from a list of mirrors, verified by its SHA-256.

A file appears under its name only complete and verified (`digits.files.atomic_write`);
a mirror that fails, sends too much or sends other bytes is skipped for the next, and
when none works `DownloadError` lists every URL with what went wrong.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from digits.files import atomic_write
from nets.errors import DataError, DownloadError

_CHUNK = 1 << 16


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike[str],
    sha256: str,
    *,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch `dest` from the first of `urls` that serves bytes with the given SHA-256.

    `size` (bytes, if known) sizes the progress bar and stops a mirror that sends more.
    The file appears under `dest` only complete and verified. DownloadError lists every
    URL tried with its failure.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot create {dest.parent} ({error.strerror or error}); set XDG_CACHE_HOME to "
            "a writable place, or give --data-dir."
        ) from None
    failures = []
    for url in urls:
        reason = _try_download(url, dest, sha256.lower(), size, progress, timeout)
        if reason is None:
            return dest
        failures.append(f"  {url}: {reason}")
    tried = "\n".join(failures) if failures else "  (no mirrors given)"
    raise DownloadError(f"could not download {dest.name}; tried:\n{tried}")


class _Refused(Exception):
    """A mirror sent bytes that are not the file: the reason, for the list of failures."""


def _try_download(
    url: str, dest: Path, sha256: str, size: int | None, progress: bool, timeout: float
) -> str | None:
    """Download one URL into `dest`; None on success, else why it failed."""

    def write(out: BinaryIO) -> None:
        digest = _stream(url, out, size, progress, timeout, label=dest.name)
        if digest is None:
            raise _Refused(f"sent more than the expected {size} bytes")
        if digest != sha256:
            raise _Refused(f"SHA-256 mismatch (got {digest[:16]}..., expected {sha256[:16]}...)")

    try:
        atomic_write(dest, write)  # only a complete, verified file gets the real name
        return None
    except _Refused as refused:
        return str(refused)
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code} {error.reason}"
    except urllib.error.URLError as error:
        return f"cannot connect ({error.reason})"
    except (OSError, http.client.HTTPException, ValueError) as error:
        return f"{type(error).__name__}: {error}"


def _stream(
    url: str, out: BinaryIO, size: int | None, progress: bool, timeout: float, label: str
) -> str | None:
    """Copy the response body into `out`; its SHA-256 hex digest, or None if over `size`."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else size
        received = 0
        with tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
            disable=not progress, leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                received += len(chunk)
                # A mirror that streams forever (or an error page) must not fill the disk.
                if size is not None and received > size:
                    return None
                digest.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
    return digest.hexdigest()
