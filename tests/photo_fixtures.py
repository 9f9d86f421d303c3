"""Fixtures for the photo pipeline: fake photos of MNIST digits and of numbers written in a
row, and the naive baseline.

Used by the tests and by `bench/photos.py` (which puts this directory on its path) to
measure `digits.photos.to_mnist` against the truth. Not part of the product.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from digits.photos import SIZE, _background, _check_gray, _resize, _shrink
from nets.errors import ImageError


def _enlarge(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling to a larger `shape` (Pillow)."""
    resized = Image.fromarray(np.asarray(img, np.float32), mode="F").resize(
        (shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float64)


def synthetic_photo(digit28_uint8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn an MNIST digit into a fake photo of it: (height, width) float32 in [0, 1].

    Dark ink on light paper, the 28x28 field enlarged smoothly to 45-90 % of a photo whose
    longer side is 150-400 px, at a random offset; uneven lighting (a linear gradient of up
    to +-25 % and a vignette), low-frequency paper texture, and per-pixel gaussian noise.
    Used by the tests and `bench/photos.py` to measure preprocessing against the truth.
    """
    digit = np.asarray(digit28_uint8, dtype=np.float64)
    if digit.size != SIZE * SIZE:
        raise ImageError(f"expected a 28x28 (or 784) uint8 digit, got shape {digit.shape}")
    digit = digit.reshape(SIZE, SIZE) / 255.0
    longer = int(rng.integers(150, 401))
    shorter = round(longer * rng.uniform(0.75, 1.0))
    h, w = (longer, shorter) if rng.random() < 0.5 else (shorter, longer)
    side = max(SIZE, round(min(h, w) * rng.uniform(0.45, 0.9)))
    field = ndimage.uniform_filter(_enlarge(digit, (side, side)), 3, mode="nearest")
    field = np.clip(field, 0.0, 1.0)
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    ink = np.zeros((h, w))
    ink[top : top + side, left : left + side] = field
    return _photograph(ink, rng, light=0.5, vignette=0.6, grain=(8, 8), texture=0.03)


def synthetic_strip(digits: np.ndarray, rng: np.random.Generator, *, dark_ink: bool = True,
                    noise: float | None = None) -> tuple[np.ndarray, list[tuple]]:
    """Photograph MNIST digits (n, 28, 28) uint8 written in a row.

    Digit height 40-110 px (each digit within +-10 % of the strip's size, shifted up or
    down by up to 8 %), gaps between the inks of 15-70 % of the height, margins, a
    lighting gradient and vignette, paper texture and per-pixel noise (`noise`: its
    standard deviation, else random). Returns the photo (height, width) float32 in [0, 1]
    and each digit's ink box (left, top, right, bottom) in it, right and bottom exclusive.
    Used by the tests of `digits.segment` and by `bench/photos.py --strips`.
    """
    size = rng.uniform(40, 110)
    fields, boxes = [], []
    x = int(rng.uniform(0.3, 1.0) * size)
    top0 = int(rng.uniform(0.3, 1.0) * size)
    for digit in digits:
        side = max(SIZE, round(size * SIZE / 20 * rng.uniform(0.9, 1.1)))
        field = np.clip(ndimage.zoom(digit / 255.0, side / SIZE, order=1), 0, 1)
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
    return _photograph(ink, rng, light=0.4, vignette=0.4, grain=(6, 12), texture=0.02,
                       dark_ink=dark_ink, noise=noise), boxes


def _photograph(ink: np.ndarray, rng: np.random.Generator, *, light: float, vignette: float,
                grain: tuple[int, int], texture: float, dark_ink: bool = True,
                noise: float | None = None) -> np.ndarray:
    """Ink (height, width) in [0, 1] on paper: ink and paper tones (dark ink on light paper,
    or light on a dark board), a lighting gradient of up to `light` and a vignette of up to
    `vignette`, low-frequency texture (a `grain` grid enlarged) of up to `texture`, and
    per-pixel gaussian noise. -> float32 in [0, 1]."""
    paper, tone = rng.uniform(0.6, 0.95), rng.uniform(0.0, 0.35)
    if not dark_ink:
        paper, tone = rng.uniform(0.05, 0.3), rng.uniform(0.75, 1.0)
    h, w = ink.shape
    y, x = np.meshgrid(np.linspace(-0.5, 0.5, h), np.linspace(-0.5, 0.5, w), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    lighting = 1.0 + rng.uniform(0, light) * (np.cos(angle) * x + np.sin(angle) * y)
    lighting -= rng.uniform(0, vignette) * (x * x + y * y)
    paper_texture = _enlarge(rng.normal(size=grain), (h, w)) * rng.uniform(0.005, texture)
    photo = (paper - (paper - tone) * ink + paper_texture) * lighting
    sigma = rng.uniform(0.003, 0.03) if noise is None else noise
    photo += rng.normal(0.0, sigma, size=(h, w))
    return np.clip(photo, 0.0, 1.0).astype(np.float32)


def naive_resize(gray: np.ndarray) -> np.ndarray:
    """The naive baseline (what the original notebook did): the whole photo -> 28x28.

    Resize the entire grayscale photo to 28x28 (area averaging), invert it when the
    background is light so the ink is bright like MNIST's, keep values in [0, 1] (the
    notebook's `/ 255` on uint8 pixels). No background removal, no cropping, no centring:
    the paper, the margins and the lighting all reach the network. Kept to measure what
    `to_mnist` buys.
    """
    img = _check_gray(gray)
    small = _resize(img, (SIZE, SIZE))
    if _background(_shrink(img, 128))[1]:
        small = 1.0 - small
    return np.clip(small, 0.0, 1.0).astype(np.float32)


