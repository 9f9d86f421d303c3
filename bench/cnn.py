"""CNN training speed: our engine against PyTorch CPU, measured in the same run.

The network is `nets.cnn` with its defaults: conv 3x3 32 (padding 1) -> relu -> max pool 2
-> conv 3x3 64 -> relu -> max pool 2 -> dense 128 -> relu -> dense 10, float32, cross-
entropy loss. A step is forward + backward of one batch (default 128). PyTorch runs the
same architecture when `torch` is importable, with torch.set_num_threads(--threads).

Each figure is the median over repeats, with min and max; the implementations take turns
inside every repeat, so that a busy machine slows them alike. The inputs are synthetic
MNIST-sized images, 80% blank like real digits (blank regions make max-pool ties, which
take their own path in the backward pass).

    python bench/cnn.py [--repeats 7] [--batch 128] [--threads N]
    python bench/cnn.py --epoch [--steps 20 | --full]

--epoch times training steps (forward, backward and an SGD update) on a fresh batch each
step, and extrapolates to an epoch of 55,000 images from --steps of them, or runs the
whole epoch with --full.

--threads (default: every core) also caps NumPy's BLAS threads; it has to be set before
NumPy loads, so this script reads its arguments first. On a machine shared with other
work, --threads 1 is faster for both: BLAS threads that wait on each other while other
processes hold the cores lose far more than they gain (up to 10x per step, measured).
Each line also gives CPU time, which counts only this process and so varies less there.

Like train.py, the script first asks glibc's malloc to keep freed memory for reuse
(digits/allocator.py); both implementations run in this process, so both get the setting.
--default-malloc leaves malloc as it is, to see what the setting is worth.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

EPOCH_IMAGES = 55_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per figure")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="BLAS threads for NumPy and torch threads (default: all cores)")
    parser.add_argument("--epoch", action="store_true",
                        help="time per epoch of 55,000 images instead of per step")
    parser.add_argument("--steps", type=int, default=20,
                        help="--epoch: steps measured, then extrapolated to a whole epoch")
    parser.add_argument("--full", action="store_true", help="--epoch: run the whole epoch")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc settings alone (train.py changes them)")
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # BLAS libraries read these once, when NumPy (or torch) is first imported.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autodiff import tree_map, value_and_grad  # noqa: E402
from digits.allocator import keep_freed_memory  # noqa: E402
from nets.cnn import cnn, init_cnn  # noqa: E402
from nets.costs import cross_entropy  # noqa: E402

LEARNING_RATE = 0.01


def synthetic_batches(rng: np.random.Generator, batch: int, count: int):
    """`count` (images (batch, 1, 28, 28) float32, one-hot targets (batch, 10)) pairs."""
    for _ in range(count):
        ink = rng.random((batch, 1, 28, 28), dtype=np.float32)
        images = np.where(rng.random(ink.shape) < 0.2, ink, 0).astype(np.float32)
        targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
        yield images, targets


# ------------------------------------------------------------------ ours


def ours(rng: np.random.Generator):
    """(step(x, y) -> loss: forward + backward, train(x, y): step plus an SGD update)."""
    params = init_cnn(rng)
    loss_and_grads = value_and_grad(lambda p, x, y: cross_entropy(cnn(p, x), y))

    def step(x, y):
        return loss_and_grads(params, x, y)

    def train(x, y):
        nonlocal params
        loss, grads = loss_and_grads(params, x, y)
        params = tree_map(lambda p, g: p - np.float32(LEARNING_RATE) * g, params, grads)
        return loss

    return step, train


# ---------------------------------------------------------------- PyTorch


def pytorch(threads: int):
    """The same architecture in PyTorch, or None when torch is not installed."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)

    def step(x, y):
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)),
                                           torch.from_numpy(y.argmax(axis=1)))
        loss.backward()
        return loss

    def train(x, y):
        loss = step(x, y)
        optimizer.step()
        return loss

    return step, train, torch.__version__


# ------------------------------------------------------------------ timing


def summary(times: list[float], cpu: list[float], unit: str = "ms") -> str:
    scale = 1e3 if unit == "ms" else 1.0
    wall, cpu_used = np.array(times) * scale, np.array(cpu) * scale
    return (f"median {np.median(wall):7.1f} {unit}  (min {wall.min():.1f}, max {wall.max():.1f}); "
            f"CPU time median {np.median(cpu_used):.1f} {unit}")


def time_steps(impls: dict, batch: int, repeats: int) -> tuple[dict, dict]:
    """Per implementation, the wall and CPU seconds of each repeat of one step on one batch.

    CPU time (all threads of this process) is the steadier figure on a shared machine:
    it does not count the time other processes held the cores.

    Each timed step follows an untimed one of the same implementation. After a step, the
    other implementation's idle threads (OpenBLAS's for NumPy, OpenMP's for torch) keep
    spinning on the cores for a while before they sleep; a step timed right after the
    other implementation's ran about twice as slow (PyTorch: 113 ms against 52 ms).
    """
    x, y = next(synthetic_batches(np.random.default_rng(1), batch, 1))
    for step in impls.values():
        step(x, y)  # warm-up: allocations, BLAS threads, torch's first-call set-up
    times: dict[str, list[float]] = {name: [] for name in impls}
    cpu: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeats):
        for name, step in impls.items():
            step(x, y)  # settle: the other implementation's threads go to sleep meanwhile
            start, start_cpu = time.perf_counter(), time.process_time()
            step(x, y)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return times, cpu


def time_epoch(impls: dict, batch: int, steps: int, repeats: int) -> tuple[dict, dict]:
    """Per implementation, wall and CPU seconds per epoch of 55,000 images, one figure per
    repeat, each from `steps` training steps on fresh batches (the whole epoch when steps
    covers it), after one untimed step (see time_steps). Making the batches is not
    counted."""
    epoch_steps = math.ceil(EPOCH_IMAGES / batch)
    steps = min(steps, epoch_steps)
    times: dict[str, list[float]] = {name: [] for name in impls}
    cpu: dict[str, list[float]] = {name: [] for name in impls}
    for train in impls.values():  # warm-up
        train(*next(synthetic_batches(np.random.default_rng(1), batch, 1)))
    for repeat in range(repeats):
        for name, train in impls.items():
            train(*next(synthetic_batches(np.random.default_rng(1), batch, 1)))  # settle
            rng = np.random.default_rng(100 + repeat)  # the same batches for everyone
            elapsed = elapsed_cpu = 0.0
            for x, y in synthetic_batches(rng, batch, steps):
                start, start_cpu = time.perf_counter(), time.process_time()
                train(x, y)
                elapsed += time.perf_counter() - start
                elapsed_cpu += time.process_time() - start_cpu
            times[name].append(elapsed * epoch_steps / steps)
            cpu[name].append(elapsed_cpu * epoch_steps / steps)
    return times, cpu


def main(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    step, train = ours(rng)
    steps, trains = {"ours (autodiff)": step}, {"ours (autodiff)": train}
    torch_impl = None if args.no_torch else pytorch(args.threads)
    if torch_impl is not None:
        torch_step, torch_train, version = torch_impl
        steps[f"PyTorch {version} CPU"] = torch_step
        trains[f"PyTorch {version} CPU"] = torch_train

    malloc = "glibc default" if args.default_malloc else \
        ("keeps freed memory" if keep_freed_memory() else "default (no mallopt here)")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"CNN 32c3-p2-64c3-p2-128-10, float32, batch {args.batch}; {args.threads} thread(s) "
          f"for BLAS and torch; {os.cpu_count()} cores; load average {load}; malloc: {malloc}")
    if torch_impl is None and not args.no_torch:
        print("(torch is not importable: PyTorch skipped)")

    if args.epoch:
        epoch_steps = math.ceil(EPOCH_IMAGES / args.batch)
        measured = epoch_steps if args.full else min(args.steps, epoch_steps)
        how = "measured" if measured == epoch_steps else f"from {measured} steps, extrapolated"
        print(f"time per epoch of {EPOCH_IMAGES:,} images ({epoch_steps} training steps with an "
              f"SGD update), {how}, over {args.repeats} repeats:")
        times, cpu = time_epoch(trains, args.batch, measured, args.repeats)
        for name in times:
            print(f"  {name:24s} {summary(times[name], cpu[name], 's')}")
    else:
        print(f"time per forward + backward step, over {args.repeats} repeats:")
        times, cpu = time_steps(steps, args.batch, args.repeats)
        for name in times:
            print(f"  {name:24s} {summary(times[name], cpu[name])}")
    if len(times) == 2:
        wall_ratio, cpu_ratio = (np.median(a) / np.median(b) for a, b in (times.values(),
                                                                          cpu.values()))
        print(f"  ratio ours / PyTorch: {wall_ratio:.1f}x wall, {cpu_ratio:.1f}x CPU time "
              "(medians)")


if __name__ == "__main__":
    main(ARGS)
