"""Data augmentation: random shifts of training images.

A digit moved by a pixel or two is the same digit; showing the network such copies is
the cheapest way to keep a CNN from memorising the training set. Randomness comes from
an explicit Generator, so a run (and its resumption) stays reproducible.
"""

from __future__ import annotations

import numpy as np


def random_shift(
    x: np.ndarray, rng: np.random.Generator, image_shape: tuple[int, int], max_shift: int
) -> np.ndarray:
    """Move each image of `x` (batch, H*W) by up to `max_shift` pixels in each direction,
    filling with zeros (the background). Returns a new (batch, H*W) array."""
    if max_shift <= 0:
        return x
    height, width = image_shape
    n = len(x)
    images = x.reshape(n, height, width)
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy = rng.integers(0, 2 * max_shift + 1, size=n)
    dx = rng.integers(0, 2 * max_shift + 1, size=n)
    rows = dy[:, None] + np.arange(height)
    cols = dx[:, None] + np.arange(width)
    shifted = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return shifted.reshape(n, height * width)
