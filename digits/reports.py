"""What a run reports in text: the epoch line, the confusion table, the JSON report, the
hint after a mistyped flag."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from difflib import get_close_matches

import numpy as np

from digits.files import atomic_write, make_parent, write_error
from nets.errors import ConfigError
from nets.metrics import precision_recall
from nets.training import TrainState


def epoch_line(entry: dict, epochs: int) -> str:
    """One line per epoch: training (and validation) loss and accuracy, seconds."""
    val = ""
    if entry["val_loss"] is not None:
        val = f"  val loss {entry['val_loss']:.4f} acc {100 * entry['val_accuracy']:.2f}%"
    return (f"epoch {entry['epoch']:>3}/{epochs}  train loss {entry['train_loss']:.4f} "
            f"acc {100 * entry['train_accuracy']:.2f}%{val}  {entry['seconds']:.1f}s")


def confusion_table(matrix: np.ndarray, class_names: list[str]) -> str:
    """The confusion matrix with per-class precision and recall, as aligned text."""
    precision, recall = precision_recall(matrix)
    width = max(5, *(len(str(n)) for n in matrix.ravel()))
    labels = [name[:width] for name in class_names]
    lines = ["confusion matrix (rows: true class, columns: predicted class)",
             " " * 12 + " ".join(f"{label:>{width}}" for label in labels)
             + "   precision  recall"]
    for i, row in enumerate(matrix):
        cells = " ".join(f"{n:>{width}}" for n in row)
        lines.append(f"{class_names[i][:11]:>11} {cells}   {_pct(precision[i]):>9} "
                     f"{_pct(recall[i]):>7}")
    return "\n".join(lines)


def evaluation_text(name: str, loss: float, matrix: np.ndarray, class_names: list[str]) -> str:
    """What --evaluate prints: the test accuracy and loss, then the confusion table."""
    right, total = int(np.trace(matrix)), int(matrix.sum())
    return (f"{name}: test accuracy {100 * right / total:.2f}% ({right}/{total}), test loss "
            f"{loss:.4f}\n{confusion_table(matrix, class_names)}")


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.2f}%"


def result_line(meta: dict, state: TrainState) -> str:
    """The line that ends a training run: test accuracy and loss, early stopping if any."""
    stopped = f" (early stopping: best epoch {state.best_epoch})" \
        if state.stop_reason == "early stopping" else ""
    return (f"test accuracy {100 * meta['test_accuracy']:.2f}%  test loss "
            f"{meta['test_loss']:.4f}{stopped}")


def top3_line(probabilities: np.ndarray, class_names: list[str], mark: str = "") -> str:
    """The most likely class (followed by `mark`), then the three most likely with their
    probabilities."""
    top = np.argsort(probabilities)[::-1][:3]
    ranked = ", ".join(f"{class_names[k]} {100 * probabilities[k]:.1f}%" for k in top)
    return f"{class_names[top[0]]}{mark}   (top 3: {ranked})"


def write_report(path: str, meta: dict) -> None:
    """The JSON report: test accuracy and loss, the per-epoch history (`epochs`) and the
    rest of the model's metadata (`config`)."""
    report = {"test_accuracy": meta["test_accuracy"], "test_loss": meta["test_loss"],
              "epochs": meta.get("history", []),
              "config": {k: v for k, v in meta.items() if k != "history"}}
    make_parent(path)
    text = json.dumps(report, indent=2) + "\n"
    try:
        atomic_write(path, lambda f: f.write(text.encode()))
    except OSError as error:
        raise ConfigError(write_error(path, error)) from None


def did_you_mean(message: str, flags: Iterable[str]) -> str:
    """For argparse's "unrecognized arguments: --lrr 0.1", "; did you mean --lr?" when a
    flag is close to the first unknown word; else ""."""
    unknown = re.match(r"unrecognized arguments: ([^\s=]+)", message)
    close = get_close_matches(unknown[1], list(flags), 1) if unknown else []
    return f"; did you mean {close[0]}?" if close else ""
