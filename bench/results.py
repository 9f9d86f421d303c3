"""The README's results table: each run is `python train.py ...` in a fresh process, timed
from start to exit (data loading included), read back from its --report.

    python bench/results.py --data-dir DIR [--fashion-dir DIR] [--seeds 0 1 2]
        [--only default mse cnn cnn-fast mlp-best seed seed-he fashion-cnn] [--busy]

--data-dir is the MNIST folder and --fashion-dir the Fashion-MNIST one; without them
train.py looks where it always does ($MNIST_DIR / $FASHION_MNIST_DIR, then the cache).

Prints a Markdown table: test accuracy (mean and spread over the seeds) and wall time.
With --busy every run is made twice in a row, once alone and once while another process
keeps one core busy (a Python loop that never sleeps, as a compiler or a browser tab
might), and the table adds the busy wall time and its ratio to the quiet one (medians).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

RUNS = {
    "default": ("`python train.py`", [], True),
    "mse": ("`python train.py --cost mse`", ["--cost", "mse"], True),
    "cnn": ("`python train.py --model cnn`", ["--model", "cnn"], True),
    "cnn-fast": ("`python train.py --model cnn --epochs 2 --batch-size 64`",
                 ["--model", "cnn", "--epochs", "2", "--batch-size", "64"], True),
    "mlp-best": ("`python train.py --layers 784,1024,512,10 --epochs 15`",
                 ["--layers", "784,1024,512,10", "--epochs", "15"], True),
    "seed": ("`python train.py --recipe seed`", ["--recipe", "seed"], False),
    "seed-he": ("`python train.py --recipe seed --init he`", ["--recipe", "seed", "--init", "he"],
                False),
    "fashion-cnn": ("`python train.py --model cnn --dataset fashion-mnist`",
                    ["--model", "cnn", "--dataset", "fashion-mnist"], True),
}


def run_once(flags: list[str], seed: int, data_dir: str | None, workdir: Path) -> dict:
    report = workdir / f"report-{seed}-{len(list(workdir.iterdir()))}.json"
    command = [sys.executable, str(ROOT / "train.py"), *flags, "--seed", str(seed), "--quiet",
               "--save", str(workdir / "model.npz"), "--overwrite", "--no-checkpoint",
               "--report", str(report)]
    if data_dir:
        command += ["--data-dir", data_dir]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    result = json.loads(report.read_text())
    result["wall_seconds"] = seconds
    return result


@contextlib.contextmanager
def one_core_busy():
    """Another process that keeps one core busy while the block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # running before the timed command starts
        yield
    finally:
        spinner.kill()
        spinner.wait()


def describe(results: list[dict]) -> tuple[str, str, str]:
    accuracy = np.array([100 * r["test_accuracy"] for r in results])
    seconds = np.array([r["wall_seconds"] for r in results])
    last = results[0]["epochs"][-1]
    if len(results) > 1:
        acc = f"{accuracy.mean():.2f}% ± {accuracy.std(ddof=1):.2f} " \
              f"({', '.join(f'{a:.2f}' for a in accuracy)})"
        wall = f"{np.median(seconds):.1f} s (median of {len(seconds)})"
    else:
        acc, wall = f"{accuracy[0]:.2f}%", f"{seconds[0]:.1f} s"
    return acc, wall, f"{last['train_loss']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="MNIST folder")
    parser.add_argument("--fashion-dir", help="Fashion-MNIST folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=tuple(RUNS), default=list(RUNS))
    parser.add_argument("--busy", action="store_true",
                        help="also time every run with one core kept busy by another process")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            label, flags, several = RUNS[name]
            seeds = args.seeds if several else args.seeds[:1]
            data_dir = args.fashion_dir if "fashion-mnist" in flags else args.data_dir
            results, busy = [], []
            for seed in seeds:
                results.append(run_once(flags, seed, data_dir, Path(tmp)))
                if args.busy:
                    with one_core_busy():
                        busy.append(run_once(flags, seed, data_dir, Path(tmp)))
            row = [label, *describe(results)]
            if args.busy:
                quiet_s = np.median([r["wall_seconds"] for r in results])
                busy_s = np.median([r["wall_seconds"] for r in busy])
                row += [f"{busy_s:.1f} s", f"{busy_s / quiet_s:.2f}"]
            rows.append(tuple(row))
            print(f"{label}: {rows[-1][1:]}", file=sys.stderr, flush=True)
    header = ["command", "test accuracy", "wall time", "final train loss"]
    header += ["wall time, one core busy", "busy / quiet"] if args.busy else []
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
