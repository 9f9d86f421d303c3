"""Instructions per call, counted by valgrind's callgrind: deterministic, unlike timings.

    python bench/instructions.py [--calls 200] [--only NAME ...]

The contenders are bench/engine.py's: value_and_grad of its 20-op function on 4x4 arrays
with our engine, the same forward and backward written by hand in NumPy, and HIPS autograd
and PyTorch eager when they are installed. Each runs in a fresh process under callgrind
twice, making --calls calls and then three times as many; the difference, over twice
--calls, is the count per call, without start-up and imports. The BLAS library runs one
thread. Needs valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def instructions(stderr: str) -> int:
    """The total instruction count in callgrind's report (its "I refs" line)."""
    found = re.search(r"I\s+refs:\s+([\d,]+)", stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def counted(name: str, calls: int) -> int:
    """Instructions of a fresh process that makes `calls` calls of contender `name`."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, str(Path(__file__).resolve()), "--child", name, str(calls)]
    # A fixed hash seed: string hashing then lays out dicts and sets alike in every run.
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              env=dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0"))
    except FileNotFoundError:
        raise SystemExit("bench/instructions.py needs valgrind: apt-get install valgrind") from None
    if done.returncode != 0:
        raise RuntimeError(f"{name}: valgrind failed:\n{done.stderr[-2000:]}")
    return instructions(done.stderr)


# The contenders that import a peer library, which the others' processes need not load.
PEERS = {"HIPS autograd": "autograd", "PyTorch eager": "torch"}


def child(name: str, calls: int) -> None:
    """Make `calls` calls of contender `name` (the process valgrind counts)."""
    for contender, module in PEERS.items():
        if contender != name:
            sys.modules[module] = None  # its import fails, and engine.py leaves it out
    sys.path.insert(0, str(HERE))
    import numpy as np
    from engine import overhead_contenders

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    call = overhead_contenders(x, y)[name]
    for _ in range(calls):
        call()


def contenders() -> list[str]:
    sys.path.insert(0, str(HERE))
    import numpy as np
    from engine import overhead_contenders

    return list(overhead_contenders(np.zeros((4, 4)), np.zeros((4, 4))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--only", nargs="+", metavar="NAME")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    names = args.only or contenders()
    print(f"instructions per call of value_and_grad of the 20-op function (callgrind, "
          f"{args.calls} and {3 * args.calls} calls):")
    for name in names:
        per_call = (counted(name, 3 * args.calls) - counted(name, args.calls)) / (2 * args.calls)
        print(f"  {name:<18} {per_call:12,.0f}")


if __name__ == "__main__":
    main()
