"""Photographed digits: read an image file and turn it into a 28x28 input the way MNIST was made.

MNIST digits are white ink on black, with the ink's bounding box scaled (keeping the aspect
ratio, with anti-aliasing) so that its longer side is 20 px, pasted into a 28x28 field so
that the ink's centre of mass lies on the field's centre, values in [0, 1] with saturated
stroke cores (max 1). A network trained on that has never seen paper, shadows, margins or
dark-on-light ink, so `to_mnist` rebuilds exactly that picture from a photo:

1. shrink very large photos (area averaging) to a working size;
2. estimate the background (paper and uneven lighting) with a robust quadratic surface
   fitted to the non-ink pixels; the side on which the outliers lie says whether the ink
   is darker or lighter than the paper;
3. turn the photo into an ink signal that is ~0 on the background (relative darkening for
   light paper, so uneven lighting cancels; the difference for a dark board);
4. threshold the signal (Otsu) to find the strokes, refuse images without a clear digit,
   drop small specks (connected components much smaller than the largest, found with
   `scipy.ndimage.label`), and contrast-normalise softly so anti-aliased edges stay grey
   while stroke cores saturate;
5. thicken strokes that would come out thinner than MNIST's thinnest (fine pens);
6. crop to the ink, scale the longer side to 20 px with area averaging (Pillow's box
   filter), and shift it in a 28x28 field by whole pixels so that the centre of mass
   (`scipy.ndimage.center_of_mass`) is at (14, 14), as MNIST did.

Filters, labelling and resampling are scipy.ndimage's and Pillow's; what is left here is
the part particular to photos of digits (the background model, the thresholds).

Centre convention: pixel (r, c) sits at coordinates (r, c); the centre of mass is
`sum(r * v) / sum(v)`. Measured on the real MNIST test set it averages (13.99, 14.01) with
standard deviation 0.29, the spread of a shift rounded to whole pixels, so the target is
(14, 14) and the shift is rounded the same way.

Invariants: `to_mnist` returns (28, 28) float32 in [0, 1]; everything a user can get
wrong (unreadable file, empty image, no digit, Pillow or scipy not installed) raises
`ImageError` naming the file or the problem. Pillow and scipy (the `image` extra) are
imported when first needed, so this module imports without them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digits.imagefiles import load_image, require_pillow, save_input_image
from nets.errors import ImageError

__all__ = ["load_digit", "load_image", "require_pillow", "save_input_image", "to_mnist"]

SIZE = 28
BOX = 20
CENTRE = 14.0
WORK_SIZE = 512  # longer side of the working image: plenty for a 20 px result, and fast
MIN_CONTRAST = 0.08  # ink must differ from the paper by 8 % ...
MIN_SNR = 6.0  # ... and by six noise standard deviations
SPECK_FRACTION = 0.08  # components under 8 % of the largest one's area are specks
MIN_STROKE = 1.2  # px at the 20 px scale; MNIST's 3rd percentile is about 1.3
TARGET_STROKE = 1.8

SCIPY_HINT = "preparing photos needs scipy: pip install '.[image]'"

PathLike = str | os.PathLike[str]


def _ndimage():
    """scipy.ndimage, or ImageError saying how to install scipy."""
    try:
        from scipy import ndimage
    except ImportError:
        raise ImageError(SCIPY_HINT) from None
    return ndimage


def load_digit(path: PathLike) -> np.ndarray:
    """`to_mnist(load_image(path))`: a photo file -> (28, 28) float32 MNIST-style input."""
    try:
        return to_mnist(load_image(path))
    except ImageError as e:
        if str(Path(path)) in str(e):
            raise
        raise ImageError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------
# Photo -> MNIST


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """A grayscale photo (height, width) in [0, 1] -> (28, 28) float32 MNIST-style digit.

    White ink on black, ink bounding box 20 px on its longer side, centre of mass at
    (14, 14) to the nearest pixel, stroke cores at 1. Raises ImageError("no digit found")
    when nothing stands out from the background.
    """
    img = _shrink(_check_gray(gray), WORK_SIZE)
    soft = _segment(*_ink_signal(img))
    rows, cols = np.nonzero(soft > 0)
    crop = soft[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape
    longer = max(h, w)
    shape = (max(1, round(BOX * h / longer)), max(1, round(BOX * w / longer)))
    return _centre(_resize(crop, shape))


def _check_gray(gray: np.ndarray) -> np.ndarray:
    try:
        img = np.asarray(gray, dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageError("expected a 2-D grayscale array of numbers") from None
    if img.ndim != 2:
        raise ImageError(f"expected a 2-D grayscale array, got shape {img.shape}")
    if img.size == 0:
        raise ImageError("the image is empty (0 pixels)")
    lo, hi = img.min(), img.max()  # NaN and infinities show in these: no full-size mask
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageError("the image holds NaN or infinite values")
    return img if 0.0 <= lo and hi <= 1.0 else np.clip(img, 0.0, 1.0)


def _background(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """The background (paper and lighting) and whether it is lighter than the ink.

    The ink is the minority of pixels that departs from a smooth surface, so the polarity
    is read from the residual's tails: dark ink leaves a heavier tail below the surface
    than above it. (The border alone misleads under vignetting, where dark corners make the
    paper look mid-grey.)
    """
    background = _fit_background(img)
    resid = img - background
    spread = 1.4826 * _median(np.abs(resid - _median(resid)))
    below = np.clip(-resid - 3.0 * spread, 0.0, None).sum()
    above = np.clip(resid - 3.0 * spread, 0.0, None).sum()
    return background, bool(below >= above)


def _ink_signal(img: np.ndarray) -> tuple[np.ndarray, float]:
    """How much each pixel differs from the background towards the ink (~0 on paper), and
    the per-pixel noise of that signal.

    Light paper is modelled as lighting x reflectance, so the signal is the relative
    darkening `1 - img / background`: uneven lighting cancels. A dark board is additive.
    """
    if max(img.shape) >= 100:  # photo noise is per pixel, strokes are many pixels wide
        img = _ndimage().uniform_filter(img, 3, mode="nearest")
    background, light = _background(img)
    if light:
        signal = (background - img) / np.maximum(background, 0.05)
    else:
        signal = img - background
    return signal, _noise(signal, step=3 if max(img.shape) >= 100 else 1)


def _noise(signal: np.ndarray, step: int) -> float:
    """Standard deviation of per-pixel noise, from differences of pixels `step` apart.

    Differences cancel the smooth background (and any error in fitting it); the median
    ignores the few differences that straddle a stroke edge. `step` 3 skips the
    correlation left by the 3x3 blur.
    """
    diffs = [np.abs(np.diff(signal[:, ::step], axis=1)).ravel(),
             np.abs(np.diff(signal[::step], axis=0)).ravel()]
    return _noise_from_diffs(np.concatenate(diffs))


def _noise_from_diffs(diffs: np.ndarray) -> float:
    """The noise's standard deviation from absolute differences of pixels: their median /
    (0.6745 sqrt 2), the normal distribution's; 0 for none. When more than half are
    exactly 0 (flat paper, as in a drawing), the median is 0 without a partition."""
    if diffs.size == 0 or np.count_nonzero(diffs) < diffs.size - diffs.size // 2:
        return 0.0
    return _median(diffs) / (0.6745 * np.sqrt(2.0))


def _fit_background(img: np.ndarray) -> np.ndarray:
    """A quadratic surface through the background, ignoring the ink on either side.

    Fitted on a shrunk copy, refitting without the pixels more than 2.5 robust standard
    deviations away, until the kept set stops changing.
    """
    small = _shrink(img, 48)
    quadratic = min(small.shape) >= 8  # tiny images get a constant
    columns = _terms(*_grid(small.shape), quadratic)  # (terms, pixels)
    design = columns.T
    z = small.ravel()
    keep = np.ones(z.size, dtype=bool)
    kept_columns = columns
    coef = np.zeros(design.shape[1])
    for _ in range(8):
        # Normal equations of the kept pixels: zeroing the others' columns is the same
        # sum as selecting the kept rows, without the fancy indexing.
        coef = _solve(kept_columns @ design, kept_columns @ z)
        resid = z - design @ coef
        kept = resid[keep]
        centre = _median(kept)
        spread = 1.4826 * _median(np.abs(kept - centre))
        new = np.abs(resid - centre) < 2.5 * spread + 1e-6
        if np.count_nonzero(new) < design.shape[1] or np.array_equal(new, keep):
            break
        keep = new
        kept_columns = columns * keep
    return _surface(coef, img.shape)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with a @ x = b: by LU, or by least squares when `a` is singular."""
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(a, b, rcond=None)[0]


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] as fractions of the image, (h, 1) and (1, w).

    Fractions, so that a fit on a shrunk copy evaluates on the full-size grid.
    """
    h, w = shape
    return ((np.arange(h) + 0.5) / h * 2 - 1)[:, None], ((np.arange(w) + 0.5) / w * 2 - 1)[None, :]


def _terms(y: np.ndarray, x: np.ndarray, quadratic: bool) -> np.ndarray:
    """(6, h * w) rows 1, x, y, x^2, xy, y^2 over the grid, or (1, h * w) ones."""
    terms = np.empty((6 if quadratic else 1, y.shape[0], x.shape[1]))
    terms[0] = 1.0
    if quadratic:
        terms[1], terms[2] = x, y
        np.multiply(x, x, out=terms[3])
        np.multiply(x, y, out=terms[4])
        np.multiply(y, y, out=terms[5])
    return terms.reshape(len(terms), -1)


def _surface(coef: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The fitted surface (coef @ `_terms`) on a grid of `shape`, evaluated by rows and
    columns rather than through the (6, h * w) terms."""
    if coef.size == 1:
        return np.full(shape, coef[0])
    y, x = _grid(shape)
    c1, cx, cy, cxx, cxy, cyy = coef
    return (c1 + y * (cy + cyy * y)) + x * ((cx + cxy * y) + cxx * x)


def _median(values: np.ndarray) -> float:
    """np.median of a non-empty array without NaN, without its overhead (it is called
    on small arrays many times per photo)."""
    flat = values.ravel()
    half = flat.size // 2
    # Two ranks even for an odd size: NumPy's partition on one rank slows down a
    # hundredfold on arrays full of equal values, such as the blank paper of a drawing.
    part = np.partition(flat, (max(half - 1, 0), half))
    if flat.size % 2:
        return float(part[half])
    return float((part[half - 1] + part[half]) / 2)


def _segment(signal: np.ndarray, noise: float) -> np.ndarray:
    """Ink signal -> soft ink image in [0, 1] with specks removed; ImageError if no digit."""
    t = _otsu(signal)
    ink = signal > t
    if not ink.any():
        raise ImageError("no digit found: the image is blank")
    level = _median(signal[ink])
    if level < MIN_CONTRAST or level < MIN_SNR * noise:
        raise ImageError("no digit found: nothing stands out from the background")
    strokes = _drop_specks(ink)
    lo = min(max(0.5 * t, 3.0 * noise), 0.9 * level)
    soft = np.clip((signal - lo) / (level - lo), 0.0, 1.0)
    soft = soft * _max_filter(strokes, 2)  # soft edges next to strokes only, not specks
    return _thicken(soft, strokes)


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
        mean0 = m0 / w0
        mean1 = (m0[-1] - m0) / w1
        between = w0 * w1 * (mean0 - mean1) ** 2
    between = np.nan_to_num(between[:-1], nan=-1.0)
    return float(edges[1 + int(np.argmax(between))])


def _drop_specks(mask: np.ndarray) -> np.ndarray:
    """Keep the 8-connected components at least SPECK_FRACTION of the largest one's area."""
    labels, count = _ndimage().label(mask, structure=np.ones((3, 3), dtype=bool))
    area = np.bincount(labels.ravel(), minlength=count + 1)
    area[0] = 0  # the background
    return (area >= SPECK_FRACTION * area.max())[labels] & mask


def _thicken(soft: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """Dilate strokes that would be thinner than MNIST's at the 20 px scale (fine pens)."""
    rows, cols = np.nonzero(strokes)
    longer = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    area = strokes.sum()
    edges = np.count_nonzero(np.diff(strokes, axis=0)) + np.count_nonzero(np.diff(strokes, axis=1))
    edges += strokes[[0, -1]].sum() + strokes[:, [0, -1]].sum()
    width = 2.0 * area / max(edges, 1) * BOX / longer  # stroke width at the 20 px scale
    if width >= MIN_STROKE:
        return soft
    radius = round((TARGET_STROKE - width) * longer / BOX / 2)
    return _max_filter(soft, radius) if radius >= 1 else soft


# ---------------------------------------------------------------------------------------
# Resampling and filters


def _resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample to `shape` with Pillow: area averaging (the box filter) when shrinking,
    bilinear when enlarging."""
    Image, _ = require_pillow()
    shrinking = shape[0] <= img.shape[0] and shape[1] <= img.shape[1]
    resized = Image.fromarray(img.astype(np.float32), mode="F").resize(
        (shape[1], shape[0]), Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float64)


def _shrink(img: np.ndarray, size: int) -> np.ndarray:
    """Area-average so that the longer side is at most `size`."""
    longer = max(img.shape)
    if longer <= size:
        return img
    return _resize(img, tuple(max(1, round(n * size / longer)) for n in img.shape))


def _max_filter(img: np.ndarray, radius: int) -> np.ndarray:
    """Maximum over a (2 radius + 1) square; zero beyond the edges."""
    if radius < 1:
        return img
    return _ndimage().maximum_filter(img.astype(np.float64), size=2 * radius + 1,
                                     mode="constant", cval=0.0)


def _centre(box: np.ndarray) -> np.ndarray:
    """Place `box` in 28x28 so its centre of mass is at (14, 14), to the nearest pixel."""
    ndimage = _ndimage()
    if not box.sum() > 0:
        raise ImageError("no digit found: nothing left after cropping")
    r, c = ndimage.center_of_mass(box)
    field = np.zeros((SIZE, SIZE))
    h, w = min(box.shape[0], SIZE), min(box.shape[1], SIZE)
    field[:h, :w] = box[:h, :w]
    move = (int(np.floor(CENTRE - r + 0.5)), int(np.floor(CENTRE - c + 0.5)))
    out = ndimage.shift(field, move, order=0, mode="constant", cval=0.0)
    peak = out.max()
    if not peak > 0:
        raise ImageError("no digit found: nothing left after centring")
    return (out / peak).astype(np.float32)
