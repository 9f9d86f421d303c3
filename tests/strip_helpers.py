"""Synthetic photos of written numbers: MNIST digits side by side on lit, noisy paper.

Used by tests/test_segment.py and bench/photos.py to measure reading whole numbers against
the truth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def synthetic_strip(digits: np.ndarray, rng: np.random.Generator, *, dark_ink: bool = True,
                    noise: float | None = None) -> tuple[np.ndarray, list[tuple]]:
    """Photograph MNIST digits (n, 28, 28) uint8 written in a row.

    Digit height 40-110 px (each digit within +-10 % of the strip's size, shifted up or
    down by up to 8 %), gaps between the inks of 15-70 % of the height, margins, a
    lighting gradient and vignette, paper texture and per-pixel noise. Returns the photo
    (height, width) float32 in [0, 1] and each digit's ink box (left, top, right, bottom)
    in it, right and bottom exclusive.
    """
    size = rng.uniform(40, 110)
    fields, boxes = [], []
    x = int(rng.uniform(0.3, 1.0) * size)
    top0 = int(rng.uniform(0.3, 1.0) * size)
    for digit in digits:
        side = max(28, round(size * 28 / 20 * rng.uniform(0.9, 1.1)))
        field = np.clip(ndimage.zoom(digit / 255.0, side / 28, order=1), 0, 1)
        rows, cols = np.nonzero(field > 0.2)
        field = field[:, cols.min(): cols.max() + 1]
        dy = int(rng.uniform(-0.08, 0.08) * size)
        fields.append((field, x, top0 + dy))
        boxes.append((x, top0 + dy + int(rows.min()), x + field.shape[1],
                      top0 + dy + int(rows.max()) + 1))
        x += field.shape[1] + int(rng.uniform(0.15, 0.7) * size)
    h = top0 + max(f.shape[0] + y - top0 for f, _, y in fields) + int(rng.uniform(0.3, 1.0) * size)
    w = x + int(rng.uniform(0.1, 0.6) * size)
    ink = np.zeros((h, w))
    for field, left, top in fields:
        region = ink[top: top + field.shape[0], left: left + field.shape[1]]
        np.maximum(region, field, out=region)

    paper, tone = rng.uniform(0.6, 0.95), rng.uniform(0.0, 0.35)
    if not dark_ink:
        paper, tone = rng.uniform(0.05, 0.3), rng.uniform(0.75, 1.0)
    y, xx = np.meshgrid(np.linspace(-0.5, 0.5, h), np.linspace(-0.5, 0.5, w), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    lighting = 1.0 + rng.uniform(0, 0.4) * (np.cos(angle) * xx + np.sin(angle) * y)
    lighting -= rng.uniform(0, 0.4) * (xx * xx + y * y)
    texture = ndimage.zoom(rng.normal(size=(6, 12)), (h / 6, w / 12), order=1)[:h, :w]
    texture = np.pad(texture, ((0, h - texture.shape[0]), (0, w - texture.shape[1])), "edge")
    photo = (paper + (tone - paper) * ink + texture * rng.uniform(0.005, 0.02)) * lighting
    sigma = rng.uniform(0.003, 0.03) if noise is None else noise
    photo = photo + rng.normal(0.0, sigma, size=(h, w))
    return np.clip(photo, 0.0, 1.0).astype(np.float32), boxes
