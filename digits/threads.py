"""The command-line tools' threads: the BLAS library single-threaded, large products on
the engine's own threads (`autodiff.parallel`).

OpenBLAS's threads spin while they wait for each other, so on a machine where another
process keeps a core busy a training step can take ten times as long as it should, and
its results change with its thread count. Importing this module, before NumPy is first
imported, asks the BLAS library for one thread; `use_cores` then starts the engine's
threads, which share the work of large products without either problem (see
autodiff/parallel.py). A BLAS thread count set in the environment is respected, and the
engine's threads then stay off, so the two never compete for the same cores;
DIGITS_THREADS sets how many engine threads to use (default: every core this process may
run on).

Only the command-line entry points import this; importing the library changes nothing.
"""

from __future__ import annotations

import os
import sys

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                         "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_USER_SET_BLAS = any(name in os.environ for name in BLAS_THREAD_VARIABLES)
# The BLAS library reads its thread count once, when NumPy loads: too late after that.
BLAS_PINNED = not _USER_SET_BLAS and "numpy" not in sys.modules
if BLAS_PINNED:
    for _name in BLAS_THREAD_VARIABLES:
        os.environ[_name] = "1"


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def engine_threads() -> int:
    """How many threads the engine should use: DIGITS_THREADS, else every available core
    when the BLAS library was pinned to one thread here, else 1 (the BLAS library has its
    own threads: the user chose a count, or NumPy had loaded before this module)."""
    text = os.environ.get("DIGITS_THREADS", "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            from nets.errors import ConfigError

            raise ConfigError(f"DIGITS_THREADS must be a positive integer, got {text!r}")
        return int(text)
    return available_cores() if BLAS_PINNED else 1


def use_cores() -> int:
    """Start the engine's threads; returns how many it uses."""
    from autodiff.parallel import set_threads

    count = engine_threads()
    set_threads(count)
    return count
