"""The figure behind the README's plateau explanation: learning curves of the original
notebook's recipe (784-100-64-28-10, full-batch gradient descent at 0.1, weights
N(0, 1) * 0.01) against the same network with He initialisation, each with mean squared
error and with cross-entropy: four runs on one chart.

    python bench/plateau.py [--data-dir DIR] [--steps 300] [--out docs/plateau.png]

Each run is one call of the training loop (one full-batch step per epoch); the chart
shows the training cost and the validation accuracy after every step. Prints each run's
last values.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digits.datasets import load_dataset  # noqa: E402
from digits.plots import _figure, _save  # noqa: E402
from nets.config import SEED  # noqa: E402
from nets.costs import COSTS  # noqa: E402
from nets.inputs import prepare_images  # noqa: E402
from nets.models import build_model  # noqa: E402
from nets.training import init_state, split, train  # noqa: E402

RUNS = (  # (label, init, cost, line style)
    ("N(0,1)*0.01 init, MSE (the notebook)", "normal", "mse", ("tab:red", "-")),
    ("N(0,1)*0.01 init, cross-entropy", "normal", "cross-entropy", ("tab:red", "--")),
    ("He init, MSE", "he", "mse", ("tab:blue", "-")),
    ("He init, cross-entropy", "he", "cross-entropy", ("tab:blue", "--")),
)


def run(data, init: str, cost: str, steps: int) -> list[dict]:
    settings = replace(SEED, init=init, cost=cost, epochs=steps)
    model = build_model(settings)
    params = model.init(np.random.default_rng(settings.seed))
    state = train(init_state(params, settings), model.apply, COSTS[cost], data, settings)
    return state.history


def draw(curves: dict, majority: float, out: Path) -> Path:
    """The four runs' cost and validation accuracy per step; a dotted line at `majority`,
    the share of the most common digit among the validation images (the plateau's
    accuracy)."""
    fig = _figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for label, _, _, (color, style) in RUNS:
        history = curves[label]
        steps = np.arange(1, len(history) + 1)
        loss_ax.plot(steps, [h["train_loss"] for h in history], color=color, ls=style,
                     label=label)
        acc_ax.plot(steps, [100 * h["val_accuracy"] for h in history], color=color, ls=style,
                    label=label)
    loss_ax.set(xlabel="full-batch step", ylabel="training cost (log scale)", yscale="log",
                title="cost")
    acc_ax.set(xlabel="full-batch step", ylabel="validation accuracy (%)", ylim=(0, 100),
               title="accuracy on 5,000 held-out training images")
    acc_ax.axhline(100 * majority, color="gray", lw=0.8, ls=":")
    acc_ax.legend(loc="lower right", fontsize=8)
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    fig.suptitle("784-100-64-28-10 ReLU network, gradient descent at 0.1 on all 55,000 "
                 "training images")
    return _save(fig, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="the MNIST folder (default $MNIST_DIR or the cache)")
    parser.add_argument("--steps", type=int, default=SEED.epochs)
    parser.add_argument("--out", default=str(ROOT / "docs" / "plateau.png"))
    args = parser.parse_args()
    mnist = load_dataset("mnist", args.data_dir)
    data = split(prepare_images(mnist.train_images), mnist.train_labels.astype(np.int64),
                 SEED.val_size, mnist.num_classes, SEED.seed, image_shape=(28, 28))
    curves = {}
    for label, init, cost, _ in RUNS:
        curves[label] = run(data, init, cost, args.steps)
        last = curves[label][-1]
        print(f"{label}: after {len(curves[label])} steps training cost "
              f"{last['train_loss']:.4f}, validation accuracy {100 * last['val_accuracy']:.2f}%",
              flush=True)
    majority = np.bincount(data.val_labels).max() / len(data.val_labels)
    print(f"wrote {draw(curves, majority, Path(args.out))}")


if __name__ == "__main__":
    main()
