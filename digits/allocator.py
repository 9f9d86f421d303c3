"""Keep freed memory for reuse: one process-wide setting for training runs.

A training step allocates and frees the same large arrays every time (the CNN's im2col
columns are 29 MB at batch 128). glibc's malloc serves blocks that large with fresh
pages from the kernel, by mmap or by growing the heap, and hands them back when they are
freed, so every step pays for mapping and zeroing the same memory again: about 8,400
page faults per CNN training step, which cost from 7% to a third of the step on the
development machine, depending on how busy it was (see the README). Raising malloc's
mmap and trim thresholds makes freed blocks stay in the heap for the next step; the
process then holds on to its peak memory until it exits.

Only the command-line entry points call this; importing the library changes nothing.
"""

from __future__ import annotations

import ctypes
import sys

# From glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

LARGEST_HEAP_BLOCK = 1 << 30  # blocks up to 1 GiB come from the heap, not from mmap
NEVER_TRIM = (1 << 31) - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed large blocks for reuse. Returns whether it could.

    False where the C library has no mallopt (macOS, Windows, musl): nothing changes there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 when it rejects a value.
    return mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK) == 1 and \
        mallopt(M_TRIM_THRESHOLD, NEVER_TRIM) == 1
