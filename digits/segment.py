"""Whole numbers in one photo: find every digit, prepare each the MNIST way, read them.

A photo of a written number (one row of digits, any polarity, uneven lighting) becomes a
list of digits ordered left to right:

1. shrink the photo (block averaging) to a working size where digits are still over 10 px
   tall: finding them needs no more;
2. fit the paper and its lighting with a robust quadratic surface, as `digits.photos`
   does (its fit is used); the heavier tail of the residual says whether the ink is
   darker or lighter than the paper;
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
`read_photo`, `number_line` and `save_seen` are what `train.py --predict` does with a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits.imagefiles import load_image, save_input_image
from digits.modelfile import TrainedModel
from digits.photos import (
    _background,
    _check_gray,
    _median,
    _ndimage,
    _noise_from_diffs,
    _otsu,
    to_mnist,
)
from digits.reports import top3_line
from nets.errors import ImageError

ndimage = _ndimage()  # without scipy: one ImageError naming the extra, not a traceback

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


def read_photo(path: str | os.PathLike[str], model: TrainedModel) -> list[Reading]:
    """`read_number` on an image file with a model of 28x28 images; ImageError when the file
    cannot be read or holds no digit, CheckpointError when the model reads other images."""
    model.check_fits("28x28 digit images", 784, model.network.num_classes)
    gray = load_image(path)  # its errors name the file already
    try:
        return read_number(gray, model.predict_proba)
    except ImageError as error:
        raise ImageError(f"{path}: {error}") from None


def number_line(path: str | os.PathLike[str], readings: list[Reading],
                class_names: list[str]) -> str:
    """What --predict prints for a photo. One digit: its top 3, as always; several: the
    number and each digit's confidence. Unsure digits are marked '?', explained on a line
    of their own."""
    mark = ["?" if r.unsure else "" for r in readings]
    if len(readings) == 1:
        line = top3_line(readings[0].probabilities, class_names, mark[0])
    else:
        each = ", ".join(f"{class_names[r.digit]}{m} {100 * r.confidence:.1f}%"
                         for r, m in zip(readings, mark))
        line = f"{''.join(class_names[r.digit] for r in readings)}  ({each})"
    note = f"\n  ? = unsure: confidence below {LOW_CONFIDENCE:.0%}" if any(mark) else ""
    return f"{path}: {line}{note}"


def save_seen(readings: list[Reading], directory: str | os.PathLike[str],
              photo: str | os.PathLike[str]) -> list[Path]:
    """Write the 28x28 images the network saw, enlarged, into `directory`: PHOTO.input.png
    for one digit, PHOTO.input-1.png, PHOTO.input-2.png, ... for several."""
    stem = Path(photo).stem
    names = [f"{stem}.input.png"] if len(readings) == 1 else \
        [f"{stem}.input-{i}.png" for i in range(1, len(readings) + 1)]
    return [save_input_image(r.image, Path(directory) / name)
            for r, name in zip(readings, names, strict=True)]


# ---------------------------------------------------------------------------------------
# Ink


def _block_mean(img: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks (the ragged edge is averaged over what is there)."""
    if k == 1:
        return img
    h, w = img.shape
    padded = np.pad(img, ((0, -h % k), (0, -w % k)), mode="edge") if h % k or w % k else img
    rows = padded.reshape(-1, k, padded.shape[1]).sum(axis=1)
    blocks = rows[:, 0::k].copy()  # strided sums: far faster than a mean over axes (1, 3)
    for j in range(1, k):
        blocks += rows[:, j::k]
    return blocks / (k * k)


def _ink_signal(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The background (paper and lighting) and how far each pixel departs from it towards
    the ink: relative darkening on light paper (lighting cancels), the difference on a
    dark board. ~0 on the paper. (`digits.photos` fits the background.)"""
    smooth = ndimage.uniform_filter(img, 3, mode="nearest") if min(img.shape) >= 32 else img
    background, light = _background(smooth)
    if light:  # dark ink on light paper
        return background, (background - smooth) / np.maximum(background, 0.05)
    return background, smooth - background


def _ink_mask(signal: np.ndarray) -> np.ndarray:
    """Pixels that are ink: above Otsu's threshold and well above the noise."""
    diffs = np.abs(np.diff(signal[:, ::3], axis=1)).ravel()
    noise = _noise_from_diffs(diffs)
    ink = signal > max(_otsu(signal), 3.0 * noise, 0.5 * MIN_CONTRAST)
    if not ink.any():
        raise ImageError("no digit found: the image is blank")
    level = _median(signal[ink])
    if level < MIN_CONTRAST or level < MIN_SNR * noise:
        raise ImageError("no digit found: nothing stands out from the background")
    return ink


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
    crop = img[top:bottom, left:right]
    block = labels[top // factor:(bottom - 1) // factor + 1,
                   left // factor:(right - 1) // factor + 1]  # the labels the cut covers
    if not np.isin(block, [0, *members]).all():  # another digit reaches into the cut
        at = np.ix_(np.arange(top, bottom) // factor, np.arange(left, right) // factor)
        near = labels[at]
        mine = np.isin(near, members)
        others = ndimage.binary_dilation((near > 0) & ~mine, iterations=2 * factor) & ~mine
        crop = crop.copy()
        crop[others] = background[at][others]
    return _block_mean(crop, max(1, -(-max(crop.shape) // CROP_SIZE)))
