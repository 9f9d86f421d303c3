"""nets.metrics: accuracy, confusion matrix, precision and recall."""

import numpy as np
import pytest

from nets.metrics import accuracy, confusion_matrix, precision_recall

rng = np.random.default_rng(0)



def test_accuracy_and_confusion_matrix():
    labels = np.array([0, 1, 2, 2, 1, 0])
    predicted = np.array([0, 2, 2, 2, 1, 1])
    assert accuracy(predicted, labels) == pytest.approx(4 / 6)
    matrix = confusion_matrix(predicted, labels, 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 1], [0, 0, 2]])
    assert matrix.sum() == len(labels) and np.trace(matrix) == 4
    precision, recall = precision_recall(matrix)
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0])


def test_precision_of_a_class_never_predicted_is_nan():
    precision, recall = precision_recall(confusion_matrix([0, 0], [0, 1], 2))
    assert np.isnan(precision[1]) and recall[1] == 0.0
    with pytest.raises(ValueError, match="shapes"):
        accuracy(np.zeros(3), np.zeros(2))
