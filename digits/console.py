"""How the command line ends: one line and an exit code for every way a run can stop.

`train.py` imports this module before anything heavy, so that a Ctrl-C during start-up
(while NumPy loads) ends in one line instead of a traceback: importing it installs a
`sys.excepthook` that does that for KeyboardInterrupt and BrokenPipeError only. `finish`
turns what a run raised into its message and exit code:

    RunInterrupted   its message (where the checkpoint is), 128 + the signal's number
    KeyboardInterrupt "interrupted", 130 (a second Ctrl-C, or one outside training)
    BrokenPipeError  nothing (the reader went away, as with `| head -1`), 141
    NetsError        "error: <what is wrong and what to do>", 1
    MemoryError      "error: out of memory ...", 1
    OSError          "error: <file>: <reason>", 1

With `--debug` (or DIGITS_DEBUG=1) everything but RunInterrupted raises on, with its
traceback; anything else is a bug and always does.
"""

from __future__ import annotations

import os
import sys


def _excepthook(kind: type, error: BaseException, traceback) -> None:
    if issubclass(kind, (KeyboardInterrupt, BrokenPipeError)) and not debugging():
        os._exit(finish(error))  # nothing is half-written before main() runs
    sys.__excepthook__(kind, error, traceback)


sys.excepthook = _excepthook  # first, before anything else loads

from nets.errors import NetsError, RunInterrupted  # noqa: E402

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE


def debugging(flag: bool = False) -> bool:
    return flag or os.environ.get("DIGITS_DEBUG") == "1" or "--debug" in sys.argv[1:]


def finish(error: BaseException, debug: bool = False) -> int:
    """Print the one line `error` deserves and return the exit code; re-raise bugs, and
    everything under --debug."""
    if isinstance(error, RunInterrupted):
        _print_err(str(error))
        return error.exit_code
    if isinstance(error, BrokenPipeError):
        _silence_stdout()
        if debugging(debug):
            raise error
        return EXIT_BROKEN_PIPE
    if debugging(debug) or not isinstance(error, (NetsError, KeyboardInterrupt, MemoryError,
                                                  OSError)):
        raise error
    if isinstance(error, KeyboardInterrupt):
        _print_err("\ninterrupted; nothing was saved by this step")
        return EXIT_INTERRUPTED
    if isinstance(error, MemoryError):
        _print_err("error: out of memory; use a smaller --batch-size or smaller --layers, or "
                   "free memory (see 'When things go wrong' in the README)")
    elif isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        _print_err(f"error: {where}{error.strerror or error}")
    else:
        _print_err(f"error: {error}")
    return 1


def _print_err(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr itself is gone: nothing left to tell
        pass


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; pointing it at /dev/null keeps that quiet.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass

