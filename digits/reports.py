"""What a run reports in text: the epoch line, the confusion table, the JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from digits.runs import ensure_parent
from nets.metrics import precision_recall


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


def _pct(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.2f}%"


def write_report(path: str, test_accuracy: float, test_loss: float, meta: dict) -> None:
    """The JSON report: test accuracy and loss, the per-epoch history, the model's metadata."""
    report = {"test_accuracy": test_accuracy, "test_loss": test_loss,
              "epochs": meta.get("history", []),
              "config": {k: v for k, v in meta.items() if k != "history"}}
    ensure_parent(path)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
