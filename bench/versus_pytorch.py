"""Head to head: one recipe trained with our engine and with PyTorch CPU, in one process.

    python bench/versus_pytorch.py --recipe mlp|cnn [--epochs N] [--seed S]
        [--batch-size B] [--target ACC] [--threads N] [--data-dir DIR] [--quick]

The recipe is `nets.config.RECIPES[--recipe]` with the flags given applied. Both sides
train it from the same initial parameters (ours, copied into PyTorch: bench/torch_twin.py
builds the network from their shapes), on the same split, with the same batches in the
same order and the same random shifts, the same cost, optimizer and learning rate each
step (`learning_rates` reads them from our training loop itself). Only the engine
differs. Settings that bench/torch_twin.py does not match are refused. Before
anything is timed, the two networks' logits on 256 validation images must agree to 1e-5.

Ours runs through the product's training loop, `nets.training.train`, as `train.py` does
(each batch in shards on the engine's threads, malloc set to keep freed memory,
digits/allocator.py); PyTorch runs the loop a PyTorch
user would write, with torch.optim. The two take turns, one epoch at a time, in the order
ours, PyTorch, PyTorch, ours, ours, PyTorch...: each side runs half its epochs right after
the other's. Before each timed epoch the side about to run takes untimed steps (forward
and backward, no update) for SETTLE_SECONDS while the other side's idle threads, which
spin for a while after their last work, go to sleep; an untimed warm-up of each comes
first.

The two sides' parameters part slowly: rounding differs, and in the CNN, whose biases
start at 0, blank image regions give pre-activations of exactly 0 on the first step, where
our relu's gradient is 1/2 and PyTorch's 0. tests/test_versus_pytorch.py checks that with
non-zero initial biases the two stay together over the --quick run.

Timed, per epoch: the training steps (taking the batch, shifting it, forward, backward,
update, the running loss and accuracy). Not timed: loading and preparing the data,
reading the learning rates, the validation after each epoch, the test at the end, the
settling steps. Time to the target is the sum of the timed epochs up to the first whose
validation accuracy reaches --target (measured once per epoch, so it is a whole number of
epochs).

--threads N (default: every core) is what each side computes with: our engine's threads
(`autodiff.parallel`, with the BLAS library single-threaded, as train.py runs) and
torch.set_num_threads(N). --quick trains 2 epochs of 4 batches (and validates
and tests on 500 images): a check that everything runs, not a measurement.

Needs PyTorch: `pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

# The validation accuracy the time to target is measured to, by recipe.
DEFAULT_TARGETS = {"mlp": 0.98, "cnn": 0.99}
FORWARD_TOLERANCE = 1e-5
QUICK_BATCHES, QUICK_EVAL = 4, 500
# Settling repeats its step for at least this long: idle OpenMP and OpenBLAS threads spin
# for a while before they sleep, longer than one MLP step takes.
SETTLE_SECONDS = 0.2


def settle(step) -> None:
    """Call step() (untimed work of the side about to be timed) for SETTLE_SECONDS."""
    start = time.perf_counter()
    step()
    while time.perf_counter() - start < SETTLE_SECONDS:
        step()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=tuple(DEFAULT_TARGETS), default="mlp")
    parser.add_argument("--epochs", type=int, help="default: the recipe's")
    parser.add_argument("--seed", type=int, help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--target", type=float,
                        help="validation accuracy to time to, in [0, 1] (default: "
                             + ", ".join(f"{k} {v}" for k, v in DEFAULT_TARGETS.items()) + ")")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for NumPy's BLAS and for torch (default: all cores)")
    parser.add_argument("--data-dir", help="the MNIST files (default: $MNIST_DIR, the cache)")
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs of 4 batches: check that it runs, measure nothing")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # As train.py runs: the BLAS library single-threaded (it reads this once, when NumPy
    # is first imported), large products on the engine's threads (set in main).
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataclasses import replace  # noqa: E402
from unittest import mock  # noqa: E402

import nets.training  # noqa: E402
from autodiff import value_and_grad  # noqa: E402
from autodiff.parallel import set_threads  # noqa: E402
from digits.allocator import keep_freed_memory  # noqa: E402
from digits.datasets import load_dataset  # noqa: E402
from nets.augment import random_shift  # noqa: E402
from nets.cnn import cnn_config  # noqa: E402
from nets.config import RECIPES, Settings  # noqa: E402
from nets.costs import COSTS  # noqa: E402
from nets.errors import ConfigError, NetsError  # noqa: E402
from nets.inputs import one_hot, prepare_images  # noqa: E402
from nets.models import build_model, shard_rows  # noqa: E402
from nets.optimizers import Optimizer  # noqa: E402
from nets.training import Split, evaluate, init_state, split, train  # noqa: E402


def learning_rates(settings: Settings, examples: int) -> list[list[float]]:
    """The learning rate of every step of every epoch, as nets.training.train uses them.

    Read from the loop itself, so that whatever it does (a rate per epoch or per step,
    any schedule of nets.optimizers) the PyTorch side does too: train runs on `examples`
    blank one-pixel rows with a one-weight model and an optimizer that records the rate
    it is given and changes nothing. The one place the PyTorch side gets its rates from.
    """
    rates: list[float] = []

    def record(params: Any, grads: Any, state: Any, lr: float) -> tuple[Any, Any]:
        rates.append(lr)
        return params, state

    def recording(name: str, weight_decay: float = 0.0) -> Optimizer:
        return Optimizer(lambda params: {}, record)

    data = Split(np.zeros((examples, 1), np.float32), np.zeros(examples, np.int64),
                 np.zeros((1, 1), np.float32), np.zeros(1, np.int64), num_classes=2)
    probe = replace(settings, shift=0)  # shifts need images; they do not touch the rate
    params = {"w": np.zeros((1, 2), np.float32)}
    with mock.patch.object(nets.training, "make_optimizer", recording):
        train(init_state(params, probe), lambda p, x: x @ p["w"], COSTS["cross-entropy"],
              data, probe)
    steps = math.ceil(examples / (settings.batch_size or examples))
    if len(rates) != steps * settings.epochs:
        raise ConfigError(f"read {len(rates)} learning rates from the training loop, not "
                          f"{steps * settings.epochs}: it no longer takes its optimizer from "
                          "nets.training.make_optimizer; update learning_rates")
    return [rates[i:i + steps] for i in range(0, len(rates), steps)]


def recipe(args: argparse.Namespace) -> Settings:
    """The recipe with the flags given applied, checked against what PyTorch matches."""
    from torch_twin import check_mapped

    given = {k: getattr(args, k) for k in ("epochs", "seed", "batch_size")
             if getattr(args, k) is not None}
    settings = replace(RECIPES[args.recipe], **given).check()
    check_mapped(settings)
    if settings.val_size == 0:
        raise ConfigError("the time to the target needs validation data: --val-size above 0")
    return settings


def load_split(settings: Settings, data_dir: str | None, quick: bool) -> tuple[Split, tuple]:
    """(the training split, (test inputs, test labels)), as digits.runs.run_training makes
    them; --quick keeps a few batches and a few hundred images to evaluate on."""
    dataset = load_dataset(settings.dataset, data_dir)
    image_shape = tuple(dataset.train_images.shape[1:])
    data = split(prepare_images(dataset.train_images), dataset.train_labels.astype(np.int64),
                 settings.val_size, dataset.num_classes, seed=settings.seed,
                 image_shape=image_shape)
    test = prepare_images(dataset.test_images), dataset.test_labels.astype(np.int64)
    if quick:
        keep = QUICK_BATCHES * (settings.batch_size or 128)
        data = replace(data, train_x=data.train_x[:keep], train_labels=data.train_labels[:keep],
                       val_x=data.val_x[:QUICK_EVAL], val_labels=data.val_labels[:QUICK_EVAL])
        test = test[0][:QUICK_EVAL], test[1][:QUICK_EVAL]
    return data, test


class TorchRun:
    """The PyTorch side: the model, its optimizer and the batches nets.training draws."""

    def __init__(self, settings: Settings, params: object, data: Split,
                 rates: list[list[float]]) -> None:
        import torch
        from torch_twin import TORCH_COSTS, TwinOptimizer, torch_model

        self.torch, self.settings, self.data, self.rates = torch, settings, data, rates
        self.model = torch_model(settings, params)
        self.optimizer = TwinOptimizer(self.model, settings)
        self.cost = TORCH_COSTS[settings.cost]
        self.rng = np.random.default_rng(settings.seed)  # as init_state: order of each epoch
        self.total_steps = 0

    def _loss(self, x: np.ndarray, labels: np.ndarray):
        self.model.zero_grad(set_to_none=True)
        logits = self.model(self.torch.from_numpy(x))
        loss = self.cost(logits, self.torch.from_numpy(labels))
        loss.backward()
        return loss, logits

    def step_untimed(self) -> None:
        """A forward and backward pass, no update."""
        self._loss(self.data.train_x[:self.settings.batch_size or 128],
                   self.data.train_labels[:self.settings.batch_size or 128])
        self.model.zero_grad(set_to_none=True)

    def epoch(self, epoch: int) -> float:
        """Train 0-based `epoch` as nets.training.train does; returns its seconds."""
        data, settings = self.data, self.settings
        start = time.perf_counter()
        n = len(data.train_x)
        batch = settings.batch_size or n
        order = self.rng.permutation(n) if batch < n else np.arange(n)
        loss_sum = hits = 0.0  # the running figures nets.training.train keeps, as it does
        for step, lr in enumerate(self.rates[epoch]):
            index = order[step * batch:(step + 1) * batch]
            x, labels = data.train_x[index], data.train_labels[index]
            if settings.shift:
                shifts = np.random.default_rng((settings.seed, self.total_steps))
                x = random_shift(x, shifts, data.image_shape, settings.shift)
            loss, logits = self._loss(x, labels)
            self.optimizer.step(lr)
            self.total_steps += 1
            loss_sum += loss.item() * len(index)
            hits += int((logits.argmax(1).numpy() == labels).sum())
        return time.perf_counter() - start

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        with self.torch.no_grad():
            logits = np.concatenate([self.model(self.torch.from_numpy(x[i:i + 2000])).numpy()
                                     for i in range(0, len(x), 2000)])
        return float(np.mean(np.argmax(logits, axis=1) == labels))


def run(settings: Settings, data: Split, test: tuple) -> dict:
    """Train both sides, taking turns; per side, a list of (seconds, validation accuracy)
    per epoch, the test accuracy and the final parameters (ours as a pytree)."""
    from torch_twin import forward_gap, params_of

    network = build_model(settings, data.image_shape, data.num_classes)
    params = network.init(np.random.default_rng(settings.seed))  # as run_training does
    theirs = TorchRun(settings, params, data, learning_rates(settings, len(data.train_x)))
    gap = forward_gap(network.apply, params, theirs.model, data.val_x[:256])
    if not gap <= FORWARD_TOLERANCE:
        raise ConfigError(f"the two networks disagree before training: logits {gap:.2g} "
                          f"apart (relative), more than {FORWARD_TOLERANCE:g}")
    cost = COSTS[settings.cost]
    x0 = data.train_x[:settings.batch_size or 128]
    t0 = one_hot(data.train_labels[:len(x0)], data.num_classes, x0.dtype)
    ours_step = value_and_grad(lambda p: cost(network.apply(p, x0), t0))
    settle(theirs.step_untimed)  # warm-up: allocations, thread pools, first-call set-up
    settle(lambda: ours_step(params))
    log: dict = {"ours": [], "pytorch": [], "forward_gap": gap}
    other = {"seconds": 0.0}  # time the last on_epoch took: train counts it in the next epoch

    def between(state) -> None:
        start = time.perf_counter()
        entry, done = state.history[-1], state.epoch
        log["ours"].append((entry["seconds"] - other["seconds"], entry["val_accuracy"]))
        if done % 2 == 1:  # after ours' epochs 1, 3, ...: PyTorch's next two
            for epoch in range(done - 1, min(done + 1, settings.epochs)):
                settle(theirs.step_untimed)
                seconds = theirs.epoch(epoch)
                log["pytorch"].append((seconds, theirs.accuracy(data.val_x, data.val_labels)))
        if done < settings.epochs:
            settle(lambda: ours_step(state.params))
        other["seconds"] = time.perf_counter() - start

    rows = shard_rows(settings, len(data.train_x))
    state = train(init_state(params, settings), network.apply, cost, data, settings,
                  on_epoch=between, shard_rows=rows)
    log["ours_test"] = evaluate(network.apply, state.params, cost, *test, data.num_classes)[1]
    log["pytorch_test"] = theirs.accuracy(*test)
    log["ours_params"], log["pytorch_params"] = state.params, params_of(theirs.model, params)
    return log


def to_target(epochs: list[tuple[float, float]], target: float) -> tuple[float, int] | None:
    """(seconds, epochs) until the validation accuracy first reaches target, or None."""
    elapsed = 0.0
    for number, (seconds, accuracy) in enumerate(epochs, 1):
        elapsed += seconds
        if accuracy >= target:
            return elapsed, number
    return None


def describe(settings: Settings) -> str:
    if settings.model == "cnn":
        config = cnn_config(build_model(settings).shapes())
        shape = (f"CNN, conv {config['kernel_size']}x{config['kernel_size']} "
                 f"{'-'.join(map(str, config['channels']))}, dense {config['hidden']}")
    else:
        shape = "-".join(map(str, settings.layers)) + f" {settings.activation}"
    return (f"{shape}, {settings.cost}, {settings.optimizer} lr {settings.lr:g} "
            f"{settings.schedule}, weight decay {settings.weight_decay:g}, batch "
            f"{settings.batch_size}, {settings.epochs} epochs, shift {settings.shift}, "
            f"seed {settings.seed}")


def report(log: dict, settings: Settings, target: float) -> list[str]:
    ours, theirs = log["ours"], log["pytorch"]
    lines = [f"{'epoch':>5}  {'ours s':>8} {'val acc':>8}  {'PyTorch s':>9} {'val acc':>8}"]
    for number, ((a, acc_a), (b, acc_b)) in enumerate(zip(ours, theirs), 1):
        lines.append(f"{number:5d}  {a:8.2f} {acc_a:8.2%}  {b:9.2f} {acc_b:8.2%}")
    lines.append(f"test accuracy: ours {log['ours_test']:.2%}, PyTorch {log['pytorch_test']:.2%}")
    medians = [float(np.median([s for s, _ in side])) for side in (ours, theirs)]
    lines.append(f"median epoch: ours {medians[0]:.2f} s, PyTorch {medians[1]:.2f} s; "
                 f"ours / PyTorch {medians[0] / medians[1]:.2f}")
    reached = [to_target(side, target) for side in (ours, theirs)]
    said = [f"{r[0]:.1f} s ({r[1]} epochs)" if r else "not reached" for r in reached]
    ratio = f"; ours / PyTorch {reached[0][0] / reached[1][0]:.2f}" if all(reached) else ""
    lines.append(f"to {target:.2%} validation accuracy: ours {said[0]}, PyTorch {said[1]}{ratio}")
    return lines


def main(args: argparse.Namespace) -> int:
    try:
        import torch
    except ImportError:
        print("error: PyTorch is not installed: pip install torch==2.13.0 --index-url "
              "https://download.pytorch.org/whl/cpu", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    set_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        settings = recipe(args)
        if args.quick:
            settings = replace(settings, epochs=min(settings.epochs, 2))
        target = DEFAULT_TARGETS[args.recipe] if args.target is None else args.target
        if not 0 <= target <= 1:
            raise ConfigError(f"--target is a validation accuracy in [0, 1], got {target}")
        data, test = load_split(settings, args.data_dir, args.quick)
        malloc = "keeps freed memory" if keep_freed_memory() else "default"
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"recipe {args.recipe}: {describe(settings)}" + (" (--quick)" if args.quick else ""))
        print(f"ours against PyTorch {torch.__version__}; {args.threads} thread(s) each, "
              f"{os.cpu_count()} cores, load average {load}; malloc {malloc}", flush=True)
        log = run(settings, data, test)
    except NetsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"logits before training agree to {log['forward_gap']:.1g} (relative)")
    print("\n".join(report(log, settings, target)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
