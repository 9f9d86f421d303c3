"""What Python's lock costs the two shards of a training step: the MLP recipe, batch 128.

    python bench/lock.py [--repeats 7] [--steps 200]

One shard, half of a batch of 128 (the training loop's value_and_grad of the loss), is
timed in four settings, in milliseconds per shard step:

- alone: on the main thread, nothing else running;
- next to a product: while a second thread multiplies matrices in a loop, BLAS work that
  releases Python's lock and keeps the other core as busy;
- next to a free shard: while a second thread computes the batch's other half in a loop;
- together: the whole batch as the training loop runs it, two shards started at once on
  the engine's two threads (`autodiff.parallel.run`); this figure is per step, with each
  thread computing one shard.

Then Adam's update of the network's parameters, which the training loop makes on one
thread after each step. Each figure is the median over the repeats. The BLAS library runs
one thread and malloc keeps freed memory, as under train.py.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import digits.threads  # noqa: E402, F401  (before NumPy: the BLAS library's thread count)

import numpy as np  # noqa: E402

from autodiff import parallel  # noqa: E402
from digits.allocator import keep_freed_memory  # noqa: E402
from nets.config import RECIPES  # noqa: E402
from nets.costs import COSTS  # noqa: E402
from nets.models import build_model, shard_rows  # noqa: E402
from nets.optimizers import make_optimizer  # noqa: E402
from nets.training import _loss_and_logits  # noqa: E402

BATCH = 128


def seconds_per_call(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def beside(background: Callable[[], object], call: Callable[[], object], calls: int) -> float:
    """Seconds per call of `call` while another thread makes `background` in a loop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            background()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        return seconds_per_call(call, calls)
    finally:
        stop.set()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    keep_freed_memory()
    rng = np.random.default_rng(0)
    settings = replace(RECIPES["mlp"], batch_size=BATCH)
    network = build_model(settings)
    params = network.init(rng)
    x = (rng.random((BATCH, 784)) * (rng.random((BATCH, 784)) < 0.2)).astype(np.float32)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH)]
    cost = COSTS[settings.cost]
    whole = _loss_and_logits(network.apply, cost)
    rows = shard_rows(settings, 55_000)
    sharded = _loss_and_logits(network.apply, cost, rows)
    sharded.plan = []  # no trial of a helper process: the shards stay on the threads
    a = rng.random((rows, 784), dtype=np.float32)
    w = rng.random((784, 256), dtype=np.float32)
    optimizer = make_optimizer(settings.optimizer)
    opt_state = optimizer.init(params)
    _, grads = whole(params, x, targets)

    def shard() -> object:
        return whole(params, x[:rows], targets[:rows])

    def other_shard() -> object:
        return whole(params, x[rows:], targets[rows:])

    figures: dict[str, list[float]] = {}
    parallel.set_threads(2)
    try:
        ways = {
            "one shard alone": lambda n: seconds_per_call(shard, n),
            "one shard next to a product": lambda n: beside(lambda: a @ w, shard, n),
            "one shard next to a free shard": lambda n: beside(other_shard, shard, n),
            "two shards together (per step)": lambda n: seconds_per_call(
                lambda: sharded(params, x, targets), n),
            "Adam's update": lambda n: seconds_per_call(
                lambda: optimizer.update(params, grads, opt_state, 1e-3), n),
        }
        for way in ways.values():
            way(max(3, args.steps // 10))  # warm-up
        for _ in range(args.repeats):
            for name, way in ways.items():
                figures.setdefault(name, []).append(way(args.steps))
    finally:
        parallel.set_threads(1)
    print(f"MLP recipe, batch {BATCH} in shards of {rows} rows; ms, median (min-max) of "
          f"{args.repeats}")
    for name, values in figures.items():
        ms = np.array(values) * 1e3
        print(f"  {name:<32} {np.median(ms):6.3f} ({ms.min():.3f}-{ms.max():.3f})")


if __name__ == "__main__":
    main()
