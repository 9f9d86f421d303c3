"""Whole numbers in one photo: find every digit, prepare each the MNIST way, read them.

A photo of a written number (one row of digits, any polarity, uneven lighting) becomes a
list of digits ordered left to right:

1. shrink the photo (block averaging) to a working size where digits are still over 10 px
   tall: finding them needs no more;
2. fit the paper and its lighting with a robust quadratic surface; the heavier tail of
   the residual says whether the ink is darker or lighter than the paper;
3. threshold the smoothed ink signal (Otsu, and well above the noise) into an ink mask;
   refuse photos where nothing stands out ("no digit");
4. label 8-connected components (`scipy.ndimage.label`), drop specks (tiny next to the
   largest component), merge pieces whose horizontal extents overlap strongly (a 5 with a
   detached bar, a 4 written in two strokes), drop what is still small next to the
   largest group (dots, dust);
5. cut each group out of the full-resolution photo with a margin, paint the other
   groups' ink over with the fitted paper, shrink the cut to at most CROP_SIZE px and hand
   it to `to_mnist`, which does the MNIST preparation proper.

Boxes are (left, top, right, bottom) in the original photo's pixels, right and bottom
exclusive. Everything a user can get wrong raises `ImageError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nets.errors import ImageError
from nets.images import to_mnist

WORK_SIZE = 1600  # at most this longer side for finding the digits ...
WORK_SHORT = 120  # ... and about this shorter side: digits stay over 10 px tall there
CROP_SIZE = 96  # longer side of a digit's cut: 4-5x the 20 px MNIST box, and fast
MIN_CONTRAST = 0.08  # ink must differ from the paper by 8 % ...
MIN_SNR = 6.0  # ... and by six noise standard deviations
SPECK_AREA = 0.02  # components under 2 % of the largest's area are dust, dropped at once
SMALL_AREA = 0.06  # groups under 6 % of the largest group's area ...
SMALL_HEIGHT = 0.3  # ... or under 30 % of the tallest group's height are not digits
MIN_SIZE = 8  # px in the working image: anything smaller both ways is a speck, whatever else
MERGE_OVERLAP = 0.5  # pieces share at least half of the narrower one's width: one digit
MARGIN = 0.4  # of the digit's longer side around each cut: paper enough for to_mnist
LOW_CONFIDENCE = 0.7  # a reading below this probability is flagged as unsure

Box = tuple[int, int, int, int]


def find_digits(gray: np.ndarray) -> list[tuple[np.ndarray, Box]]:
    """Every digit in a grayscale photo (height, width) in [0, 1], left to right.

    Returns [(image (28, 28) float32 in [0, 1], box (left, top, right, bottom)), ...] with
    boxes in the photo's pixels. Raises ImageError when the photo holds no digit.
    """
    img = _check_gray(gray)
    factor = max(1, -(-max(img.shape) // WORK_SIZE), min(img.shape) // WORK_SHORT)
    work = _block_mean(img, factor)
    background, signal = _ink_signal(work)
    ink = _ink_mask(signal)
    labels, count = ndimage.label(ink, structure=np.ones((3, 3)))
    groups = _group(labels, count)
    if not groups:
        raise ImageError("no digit found: only specks stand out from the background")
    found = []
    for members, (top, left, bottom, right) in groups:
        box = (left * factor, top * factor, min(right * factor, img.shape[1]),
               min(bottom * factor, img.shape[0]))
        try:
            image = to_mnist(_cut(img, factor, background, labels, members, box))
        except ImageError:
            continue  # too faint once cut out: not a digit
        found.append((image, box))
    if not found:
        raise ImageError("no digit found: nothing digit-like stands out from the background")
    return found


@dataclass(frozen=True)
class Reading:
    """One digit of a number as the model read it."""

    digit: int
    confidence: float
    probabilities: np.ndarray  # (classes,) float32, summing to 1
    box: Box
    image: np.ndarray  # (28, 28) float32: what the network saw

    @property
    def unsure(self) -> bool:
        return self.confidence < LOW_CONFIDENCE


def read_number(gray: np.ndarray,
                predict_proba: Callable[[np.ndarray], np.ndarray]) -> list[Reading]:
    """Find the digits of a photo and classify them in one batch, left to right.

    `predict_proba` maps (N, 28, 28) float32 in [0, 1] to (N, classes) probabilities.
    Raises ImageError when the photo holds no digit.
    """
    found = find_digits(gray)
    images = np.stack([image for image, _ in found]).astype(np.float32)
    probabilities = np.asarray(predict_proba(images), dtype=np.float32)
    readings = []
    for (image, box), p in zip(found, probabilities, strict=True):
        k = int(np.argmax(p))
        readings.append(Reading(k, float(p[k]), p, box, image))
    return readings


# ---------------------------------------------------------------------------------------
# Ink


def _check_gray(gray: np.ndarray) -> np.ndarray:
    img = np.asarray(gray, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ImageError(f"expected a non-empty 2-D grayscale image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise ImageError("the image holds NaN or infinite values")
    return np.clip(img, 0.0, 1.0)


def _block_mean(img: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (the ragged edge is averaged over what is there)."""
    if k == 1:
        return img
    h, w = img.shape
    padded = np.pad(img, ((0, -h % k), (0, -w % k)), mode="edge")
    return padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k).mean(axis=(1, 3))


def _ink_signal(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The background (paper and lighting) and how far each pixel departs from it towards
    the ink: relative darkening on light paper (lighting cancels), the difference on a
    dark board. ~0 on the paper."""
    smooth = ndimage.uniform_filter(img, 3, mode="nearest") if min(img.shape) >= 32 else img
    background = _fit_background(smooth)
    resid = smooth - background
    spread = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    below = np.clip(-resid - 3.0 * spread, 0.0, None).sum()
    above = np.clip(resid - 3.0 * spread, 0.0, None).sum()
    if below >= above:  # dark ink on light paper
        return background, -resid / np.maximum(background, 0.05)
    return background, resid


def _fit_background(img: np.ndarray) -> np.ndarray:
    """A quadratic surface through the paper, refitted without outliers (the ink, on either
    side) until the kept set stops changing. Fitted on a copy of about 64 px a side."""
    k = max(1, max(img.shape) // 64)
    small = _block_mean(img, k)
    quadratic = min(small.shape) >= 8
    design = np.stack(np.broadcast_arrays(*_terms(small.shape, quadratic)), -1).reshape(
        small.size, -1)
    z = small.ravel()
    keep = np.ones(z.size, dtype=bool)
    coef = np.zeros(design.shape[1])
    for _ in range(8):
        a = design[keep]
        coef = np.linalg.lstsq(a.T @ a, a.T @ z[keep], rcond=None)[0]  # normal equations
        resid = z - design @ coef
        centre = np.median(resid[keep])
        spread = 1.4826 * np.median(np.abs(resid[keep] - centre))
        new = np.abs(resid - centre) < 2.5 * spread + 1e-6
        if new.sum() < design.shape[1] or np.array_equal(new, keep):
            break
        keep = new
    surface = sum(c * t for c, t in zip(coef, _terms(img.shape, quadratic), strict=True))
    return np.broadcast_to(surface, img.shape)


def _terms(shape: tuple[int, int], quadratic: bool) -> list:
    """The terms 1, x, y, x^2, xy, y^2 over pixel centres in [-1, 1] as broadcastable
    (h, 1), (1, w) and (h, w) arrays; only the constant when not `quadratic`."""
    h, w = shape
    if not quadratic:
        return [np.ones((1, 1))]
    y = ((np.arange(h) + 0.5) / h * 2 - 1)[:, None]
    x = ((np.arange(w) + 0.5) / w * 2 - 1)[None, :]
    return [np.ones((1, 1)), x, y, x * x, x * y, y * y]


def _ink_mask(signal: np.ndarray) -> np.ndarray:
    """Pixels that are ink: above Otsu's threshold and well above the noise."""
    diffs = np.abs(np.diff(signal[:, ::3], axis=1)).ravel()
    noise = float(np.median(diffs)) / (0.6745 * np.sqrt(2.0)) if diffs.size else 0.0
    ink = signal > max(_otsu(signal), 3.0 * noise, 0.5 * MIN_CONTRAST)
    if not ink.any():
        raise ImageError("no digit found: the image is blank")
    level = float(np.median(signal[ink]))
    if level < MIN_CONTRAST or level < MIN_SNR * noise:
        raise ImageError("no digit found: nothing stands out from the background")
    return ink


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that maximises the between-class variance of `values`."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return hi
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    return float(edges[1 + int(np.argmax(np.nan_to_num(between[:-1], nan=-1.0)))])


# ---------------------------------------------------------------------------------------
# Components -> digits


def _group(labels: np.ndarray, count: int) -> list[tuple[list[int], tuple[int, int, int, int]]]:
    """Components -> digits: [(component labels, (top, left, bottom, right)), ...], left to
    right, with specks dropped and the pieces of one digit merged."""
    if count == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    slices = ndimage.find_objects(labels)
    parts = [([i + 1], (s[0].start, s[1].start, s[0].stop, s[1].stop), int(areas[i]))
             for i, s in enumerate(slices) if areas[i] >= SPECK_AREA * areas.max()]
    parts.sort(key=lambda part: part[1][1])
    merged: list[tuple[list[int], tuple[int, int, int, int], int]] = []
    for part in parts:  # sorted by left edge: a piece can only join the groups before it
        for i, group in enumerate(merged):
            if _overlap(group[1], part[1]) >= MERGE_OVERLAP:
                merged[i] = _join(group, part)
                break
        else:
            merged.append(part)
    if not merged:
        return []
    tallest = max(box[2] - box[0] for _, box, _ in merged)
    largest = max(area for _, _, area in merged)
    kept = [(members, box) for members, box, area in merged
            if area >= SMALL_AREA * largest and box[2] - box[0] >= SMALL_HEIGHT * tallest
            and max(box[2] - box[0], box[3] - box[1]) >= MIN_SIZE]
    return sorted(kept, key=lambda group: (group[1][1] + group[1][3]) / 2)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The shared width of two boxes as a fraction of the narrower one's width."""
    shared = min(a[3], b[3]) - max(a[1], b[1])
    return max(shared, 0) / max(1, min(a[3] - a[1], b[3] - b[1]))


def _join(a: tuple, b: tuple) -> tuple:
    (ma, ba, aa), (mb, bb, ab) = a, b
    box = (min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3]))
    return ma + mb, box, aa + ab


def _cut(img: np.ndarray, factor: int, background: np.ndarray, labels: np.ndarray,
         members: list[int], box: Box) -> np.ndarray:
    """The digit's box (photo pixels) with a margin, cut from the full-resolution photo;
    other digits' ink inside it painted over with paper; shrunk to at most CROP_SIZE px
    on the longer side. `labels` and `background` are at the working scale (1 / factor)."""
    left, top, right, bottom = box
    pad = int(MARGIN * max(bottom - top, right - left)) + 2 * factor
    top, left = max(top - pad, 0), max(left - pad, 0)
    bottom, right = min(bottom + pad, img.shape[0]), min(right + pad, img.shape[1])
    crop = img[top:bottom, left:right].copy()
    at = np.ix_(np.arange(top, bottom) // factor, np.arange(left, right) // factor)
    near = labels[at]
    others = (near > 0) & ~np.isin(near, members)
    if others.any():
        grow = 2 * factor
        others = ndimage.binary_dilation(others, iterations=grow) & ~np.isin(near, members)
        crop[others] = background[at][others]
    return _block_mean(crop, max(1, -(-max(crop.shape) // CROP_SIZE)))
