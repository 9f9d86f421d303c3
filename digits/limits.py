"""How much memory this program lets untrusted sizes and configurations take.

Files declare sizes (zip entries, IDX headers, image dimensions) and users choose
configurations (`--layers`, `--batch-size`) that would allocate far more than the machine
has. Each is compared against `memory_limit()` before anything is allocated, and refused
with one line naming what is too big (`check_memory`).

The limit is 80% of the memory available now (`MemAvailable` in /proc/meminfo, else the
free physical pages from `os.sysconf`, else 4 GiB when neither can be read). The
environment variable `DIGITS_MEMORY_LIMIT` (bytes, or with a K/M/G/T suffix: `2G`) sets it
instead.
"""

from __future__ import annotations

import os
import re

from nets.errors import ConfigError

FALLBACK = 4 * 2**30
SHARE = 0.8  # of the available memory: the rest is for the interpreter, BLAS and the OS
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (best effort)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return FALLBACK


def memory_limit() -> int:
    """The most bytes one configuration or one file's arrays may take."""
    text = os.environ.get("DIGITS_MEMORY_LIMIT", "").strip()
    if text:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
        if not match:
            raise ConfigError(f"DIGITS_MEMORY_LIMIT must be a size such as 2G or 500M, "
                              f"got {text!r}")
        return int(float(match[1]) * _UNITS[match[2].upper()])
    return int(SHARE * available_memory())


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(need: int, what: str, hint: str) -> None:
    """ConfigError when `need` bytes exceed the limit: '`what` needs about X, more than the
    limit of Y (...); `hint`'."""
    limit = memory_limit()
    if need > limit:
        raise ConfigError(f"{what} needs about {format_bytes(need)}, more than the "
                          f"{format_bytes(limit)} this machine allows (80% of the available "
                          f"memory, or DIGITS_MEMORY_LIMIT); {hint}")
