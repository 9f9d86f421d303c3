"""nets.inputs: pixels to float32 rows, labels to one-hot targets."""

import numpy as np
import pytest

from nets import inputs


def test_prepare_images():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    x = inputs.prepare_images(images)
    assert x.dtype == np.float32 and x.shape == (1, 4)
    np.testing.assert_allclose(x, [[0.0, 1.0, 0.2, 0.4]], rtol=1e-6)
    assert inputs.NORMALISATION == "divide-255"


def test_one_hot():
    targets = inputs.one_hot(np.array([3, 0, 9], dtype=np.uint8))
    assert targets.dtype == np.float32 and targets.shape == (3, 10)
    assert targets.sum(axis=1).tolist() == [1, 1, 1]
    assert targets.argmax(axis=1).tolist() == [3, 0, 9]
    with pytest.raises(ValueError):
        inputs.one_hot(np.array([10]))
