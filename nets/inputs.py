"""Network inputs: image bytes to float32 rows, labels to one-hot targets.

Every model in this project sees pixels scaled by NORMALISATION: IDX bytes divided by 255,
so values lie in [0, 1]. Model files record the name, so a program using a model knows how
to prepare its inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NORMALISATION = "divide-255"



def prepare_images(images: np.ndarray) -> np.ndarray:
    """(n, h, w) uint8 -> (n, h*w) float32 in [0, 1], by NORMALISATION ("divide-255")."""
    if images.dtype != np.uint8 or images.ndim < 2:
        raise ValueError(f"expected (n, h, w) uint8 images, got {images.dtype} {images.shape}")
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255)


def one_hot(labels: np.ndarray, num_classes: int = 10, dtype: Any = np.float32) -> np.ndarray:
    """(n,) integer labels in 0..num_classes-1 -> (n, num_classes) one-hot rows."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"expected (n,) labels in 0..{num_classes - 1}, got {labels!r}")
    targets = np.zeros((len(labels), num_classes), dtype=dtype)
    targets[np.arange(len(labels)), labels] = 1.0
    return targets
