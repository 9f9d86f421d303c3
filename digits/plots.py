"""Pictures of training: learning curves, the confusion matrix, the most confident mistakes.

Each function draws one figure, writes it as a PNG at the given path and returns the path.
matplotlib is optional (`pip install '.[plot]'`) and imported only when a plot is drawn;
without it every function raises `NetsError` with a one-line message saying what to
install. Figures are built with the object-oriented API on the Agg canvas (no pyplot), so
plotting changes no global backend and leaves no open figures behind.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from digits.files import atomic_write, make_parent
from nets.errors import ConfigError, NetsError

MATPLOTLIB_HINT = "plots need matplotlib: pip install '.[plot]'"
DPI = 120

PathLike = str | os.PathLike[str]


def require_matplotlib() -> None:
    """Raise the one-line NetsError now, rather than after a long run, if plots cannot be made."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NetsError(MATPLOTLIB_HINT) from None


def _figure(width: float, height: float):
    """A new matplotlib Figure on the Agg canvas; NetsError when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401  (fails first, and clearly, when absent)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise NetsError(MATPLOTLIB_HINT) from None
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: PathLike) -> Path:
    path = Path(path)
    make_parent(path)
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, facecolor="white"))
    except OSError as e:
        raise NetsError(f"cannot write the plot to {path}: {e}") from None
    return path


def plot_learning_curves(history: Sequence[Mapping[str, float | None]], path: PathLike) -> Path:
    """Loss and accuracy per epoch, training and (when present) validation, side by side.

    `history` holds one dict per epoch with `train_loss`, `train_accuracy` and optionally
    `val_loss`, `val_accuracy` (missing or None when there is no validation split).
    Accuracies are fractions in [0, 1] and are drawn as percentages.
    """
    if not history:
        raise ConfigError("no epochs to plot: the training history is empty")
    epochs = np.arange(1, len(history) + 1)

    def series(key: str) -> np.ndarray | None:
        values = [row.get(key) for row in history]
        if all(v is None for v in values):
            return None
        return np.array([np.nan if v is None else float(v) for v in values])

    fig = _figure(10, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    marker = "o" if len(history) <= 30 else None
    panels = [
        (loss_ax, "loss", 1.0, "loss", "{:.3g}"),
        (acc_ax, "accuracy", 100.0, "accuracy (%)", "{:.2f}%"),
    ]
    for ax, name, scale, label, fmt in panels:
        for split, style in (("train", "-"), ("val", "--")):
            values = series(f"{split}_{name}")
            if values is None:
                continue
            final = values[np.isfinite(values)]
            tail = f" (last {fmt.format(final[-1] * scale)})" if final.size else ""
            ax.plot(epochs, values * scale, style, marker=marker, markersize=4,
                    label=f"{'training' if split == 'train' else 'validation'}{tail}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label.split(" ")[0].capitalize())
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.lines:
            ax.legend()
    fig.suptitle("Learning curves")
    return _save(fig, path)


def plot_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: PathLike
) -> Path:
    """Heat map of `matrix[true, predicted]` counts, with each count written in its cell."""
    matrix = np.asarray(matrix)
    k = len(class_names)
    if matrix.shape != (k, k):
        raise ConfigError(
            f"the confusion matrix has shape {matrix.shape}, expected ({k}, {k}) "
            f"for {k} class names"
        )
    side = max(5.0, 0.55 * k + 2.0)
    fig = _figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="count")
    ticks = np.arange(k)
    ax.set_xticks(ticks, [str(n) for n in class_names],
                  rotation=45 if max(map(len, map(str, class_names))) > 3 else 0)
    ax.set_yticks(ticks, [str(n) for n in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = matrix.sum()
    accuracy = f" (accuracy {np.trace(matrix) / total:.2%})" if total else ""
    ax.set_title(f"Confusion matrix{accuracy}")
    peak = matrix.max() if matrix.size else 0
    fontsize = 9 if k <= 12 else 6
    for (t, p), count in np.ndenumerate(matrix):
        if count == 0:
            continue
        dark = peak and count > 0.5 * peak  # white text on dark cells, black on light ones
        text = f"{count:g}" if np.issubdtype(matrix.dtype, np.floating) else str(count)
        ax.text(p, t, text, ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black")
    return _save(fig, path)


def plot_confident_mistakes(
    images: np.ndarray,
    true_labels: np.ndarray,
    pred_labels: np.ndarray,
    confidence: np.ndarray,
    class_names: Sequence[str],
    path: PathLike,
    count: int = 25,
) -> Path:
    """A grid of the `count` wrong predictions made with the highest confidence.

    `images` is (n, 28, 28) or (n, 784), in [0, 1] or 0-255; `true_labels`, `pred_labels`
    (n,) class indices; `confidence` (n,) the probability given to the predicted class, or
    (n, classes) probabilities. Correct predictions are skipped, so passing everything is
    fine. Each cell is titled "true 3 / pred 5 (97%)".
    """
    images = np.asarray(images, dtype=np.float64)
    true_labels = np.asarray(true_labels).astype(int).ravel()
    pred_labels = np.asarray(pred_labels).astype(int).ravel()
    confidence = np.asarray(confidence, dtype=np.float64)
    n = true_labels.size
    if confidence.ndim == 2:
        confidence = confidence[np.arange(confidence.shape[0]), pred_labels[: len(confidence)]]
    if images.ndim == 2 and images.shape[1] == 784:
        images = images.reshape(-1, 28, 28)
    if images.ndim != 3 or not (images.shape[0] == pred_labels.size == confidence.size == n):
        raise ConfigError(
            f"images {images.shape}, labels ({n},), predictions ({pred_labels.size},) and "
            f"confidences {confidence.shape} must describe the same examples"
        )
    wrong = np.nonzero(true_labels != pred_labels)[0]
    chosen = wrong[np.argsort(-confidence[wrong], kind="stable")][: max(int(count), 0)]
    top = 255.0 if images.size and images.max() > 1.0 else 1.0

    if len(chosen) == 0:
        fig = _figure(4, 2.5)
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
        fig.suptitle("Most confident mistakes")
        return _save(fig, path)
    cols = math.ceil(math.sqrt(len(chosen)))
    rows = math.ceil(len(chosen) / cols)
    fig = _figure(max(1.6 * cols + 0.4, 4.0), 1.75 * rows + 0.6)  # room for the title
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, chosen, strict=False):
        ax.imshow(images[i], cmap="gray", vmin=0.0, vmax=top, interpolation="nearest",
                  aspect="equal")
        title = f"true {class_names[true_labels[i]]} / pred {class_names[pred_labels[i]]}"
        if len(title) > 20:  # long class names (Fashion-MNIST): one name per line
            title = title.replace(" / ", "\n")
        ax.set_title(f"{title} ({_percent(confidence[i])})", fontsize=8)
    fig.suptitle(f"Most confident mistakes ({len(chosen)} of {len(wrong)} wrong)")
    return _save(fig, path)


def _percent(p: float) -> str:
    """97% -- but 99.7% rather than a rounded 100% for a prediction that was wrong."""
    return f"{p:.0%}" if p < 0.995 else f"{min(p, 0.999):.1%}"


def plot_evaluation(directory: PathLike, history: Sequence[Mapping] | None, matrix: np.ndarray,
                    class_names: Sequence[str], images: np.ndarray, labels: np.ndarray,
                    probabilities: np.ndarray) -> list[Path]:
    """The plots of an evaluation in `directory`: the learning curves (when there is a
    history), the confusion matrix and the most confident mistakes. Returns the paths."""
    out = Path(directory)
    written = []
    if history:
        written.append(plot_learning_curves(history, out / "learning_curves.png"))
    written.append(plot_confusion_matrix(matrix, list(class_names), out / "confusion_matrix.png"))
    predicted = np.argmax(probabilities, axis=1)
    written.append(plot_confident_mistakes(images, labels, predicted, probabilities.max(axis=1),
                                           list(class_names), out / "confident_mistakes.png"))
    return written
