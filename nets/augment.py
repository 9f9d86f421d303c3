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
    padded = np.zeros((n, height + 2 * max_shift, width + 2 * max_shift), dtype=x.dtype)
    padded[:, max_shift:max_shift + height, max_shift:max_shift + width] = \
        x.reshape(n, height, width)
    dy = rng.integers(0, 2 * max_shift + 1, size=n)
    dx = rng.integers(0, 2 * max_shift + 1, size=n)
    # Every window of the padded images as a view (n, 2s+1, 2s+1, height, width): picking
    # one per image copies whole rows, several times faster than gathering single pixels.
    windows = np.lib.stride_tricks.sliding_window_view(padded, (height, width), axis=(1, 2))
    return windows[np.arange(n), dy, dx].reshape(n, height * width)
