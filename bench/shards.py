"""What cutting a batch into shards is worth: one training step's forward and backward
(the training loop's own step: value_and_grad of the cost, and for shards the sum of
their weighted gradients) for the CNN and MLP recipes, in batches of --batch whatever the
recipe's own batch (the MLP's is 256), computed whole and as
shards, on one thread and on the engine's threads (one per core; DIGITS_THREADS). Whole
on the threads, the products of 50 million multiply-adds and more are shared out
(autodiff.parallel.matmul); as shards, the shards are (autodiff.parallel.run), and, on
more than one thread where fork exists, also shared with a helper process
(autodiff.helper; the "helper" rows). The training loop times its first steps both ways
and keeps the faster (nets.training.TRIAL_STEPS); here each way is timed on its own.

    python bench/shards.py [--repeats 7] [--steps 30] [--batch 128]

The shard size is what train.py uses (nets.models.shard_rows). The BLAS library runs one
thread and malloc keeps freed memory, as under train.py. Inputs are random pixels in
[0, 1], a fifth of them non-zero like MNIST's. Each figure is the median over repeats of
the milliseconds per step, whole and shards taking turns inside every repeat.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import digits.threads  # noqa: E402, F401  (before NumPy: the BLAS library's thread count)

import numpy as np  # noqa: E402
from engine import measure  # noqa: E402  (bench/engine.py: interleaved repeats)

from autodiff import helper, parallel  # noqa: E402
from digits.allocator import keep_freed_memory  # noqa: E402
from nets.config import RECIPES  # noqa: E402
from nets.costs import COSTS  # noqa: E402
from nets.models import build_model, shard_rows  # noqa: E402
from nets.training import _loss_and_logits  # noqa: E402


def ways(recipe: str, batch: int, rng: np.random.Generator) -> tuple[int, dict]:
    """(rows per shard, {name: step function}) for a recipe."""
    settings = replace(RECIPES[recipe], batch_size=batch)
    network = build_model(settings)
    params = network.init(rng)
    x = (rng.random((batch, 784)) * (rng.random((batch, 784)) < 0.2)).astype(np.float32)
    targets = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    cost = COSTS[settings.cost]
    rows = shard_rows(settings, 55_000)
    whole = _loss_and_logits(network.apply, cost)  # the training loop's own step
    sharded = _loss_and_logits(network.apply, cost, rows)
    sharded.plan = []  # no trial: on the threads
    contenders = {"whole": lambda: whole(params, x, targets),
                  "shards": lambda: sharded(params, x, targets)}
    if parallel.thread_count() > 1 and helper.available():
        helped = _loss_and_logits(network.apply, cost, rows)
        helped.plan, helped.use_helper = [], True  # no trial: with a helper process
        example = (params, x[:rows], targets[:rows], 0.5)
        helped.helper = helper.HelperProcess(helped.shard, example, helped.shard(*example))
        contenders["helper"] = lambda: helped(params, x, targets)
    return rows, contenders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    keep_freed_memory()
    cores = digits.threads.engine_threads()
    print(f"ms per step, median (min-max) of {args.repeats}")
    for recipe in ("cnn", "mlp"):
        print(f"{recipe}, batch {args.batch} in shards of at most "
              f"{ways(recipe, args.batch, np.random.default_rng(0))[0]} rows:")
        for threads in sorted({1, cores}):
            parallel.set_threads(threads)
            _, contenders = ways(recipe, args.batch, np.random.default_rng(0))
            times = measure(contenders, args.repeats, args.steps)  # seconds per step
            for name, values in times.items():
                label = f"{name}, {threads} thread{'s' if threads > 1 else ''}"
                ms = np.array(values) * 1e3
                print(f"  {label:<20} {np.median(ms):7.2f} ({ms.min():.2f}-{ms.max():.2f})")
    parallel.set_threads(1)


if __name__ == "__main__":
    main()
