"""How much a default run slows down when another process keeps one core busy.

Runs the command (default: `python train.py` with its defaults) on a quiet machine and
again while a competing process spins on one core, each `--repeats` times in turn, and
prints the medians and their ratio. The competitor is a plain CPU-bound loop in another
process, the situation of a laptop with something else running.

    python bench/busy.py --data-dir DIR [--repeats 3] [-- extra train.py flags]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spin(stop: multiprocessing.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def run_once(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more train.py flags (after --)")
    args = parser.parse_args()
    quiet, busy = [], []
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "train.py", "--quiet", "--overwrite", "--no-checkpoint",
                   "--save", str(Path(out) / "m.npz"), *args.extra]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        for _ in range(args.repeats):
            quiet.append(run_once(command))
            stop = multiprocessing.Event()
            competitor = multiprocessing.Process(target=spin, args=(stop,))
            competitor.start()
            try:
                time.sleep(0.5)  # let it take its core
                busy.append(run_once(command))
            finally:
                stop.set()
                competitor.join()
    q, b = statistics.median(quiet), statistics.median(busy)
    print(f"command: train.py {' '.join(command[2:])}")
    print(f"quiet: {q:.1f} s (median of {len(quiet)}: {', '.join(f'{t:.1f}' for t in quiet)})")
    print(f"one core busy: {b:.1f} s ({', '.join(f'{t:.1f}' for t in busy)})")
    print(f"ratio: {b / q:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
