"""Classification metrics from labels: accuracy, confusion matrix, precision and recall."""

from __future__ import annotations

import numpy as np


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of `predicted` class indices that equal `labels`."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape:
        raise ValueError(f"shapes differ: predicted {predicted.shape}, labels {labels.shape}")
    return float(np.mean(predicted == labels)) if labels.size else float("nan")


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (of the predictions) and recall (of the true examples).

    A class never predicted has precision NaN; a class with no examples has recall NaN.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = hits / matrix.sum(axis=0)
        recall = hits / matrix.sum(axis=1)
    return precision, recall
