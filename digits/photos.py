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
   drop small specks (connected components much smaller than the largest), and
   contrast-normalise softly so anti-aliased edges stay grey while stroke cores saturate;
5. thicken strokes that would come out thinner than MNIST's thinnest (fine pens);
6. crop to the ink, scale the longer side to 20 px with area averaging, paste into 28x28
   shifted by whole pixels so that the centre of mass is at (14, 14), as MNIST did.

Centre convention: pixel (r, c) sits at coordinates (r, c); the centre of mass is
`sum(r * v) / sum(v)`. Measured on the real MNIST test set it averages (13.99, 14.01) with
standard deviation 0.29, the spread of a shift rounded to whole pixels, so the target is
(14, 14) and the shift is rounded the same way.

Invariants: `to_mnist` and `naive_resize` need only NumPy and return (28, 28) float32 in
[0, 1]; everything a user can get wrong (unreadable file, empty image, no digit, Pillow not
installed) raises `ImageError` naming the file or the problem. Pillow is imported lazily,
so this module imports without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from digits.files import atomic_write, make_parent
from nets.errors import ImageError

SIZE = 28
BOX = 20
CENTRE = 14.0
WORK_SIZE = 512  # longer side of the working image: plenty for a 20 px result, and fast
MIN_CONTRAST = 0.08  # ink must differ from the paper by 8 % ...
MIN_SNR = 6.0  # ... and by six noise standard deviations
SPECK_FRACTION = 0.08  # components under 8 % of the largest one's area are specks
MIN_STROKE = 1.2  # px at the 20 px scale; MNIST's 3rd percentile is about 1.3
TARGET_STROKE = 1.8

PILLOW_HINT = "reading and writing images needs Pillow: pip install '.[image]'"

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------------------
# Files


def require_pillow():
    """Pillow's Image and ImageOps modules, or ImageError saying how to install Pillow."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImageError(PILLOW_HINT) from None
    return Image, ImageOps


def load_image(path: PathLike) -> np.ndarray:
    """Read any image Pillow can open as grayscale float32 in [0, 1], shape (height, width).

    EXIF orientation is applied; transparent pixels (RGBA, LA, palette transparency) are
    composited onto white paper; 16-bit and 32-bit grayscale are scaled by their range.
    Raises ImageError naming the file when it is missing, not an image, truncated or empty.
    """
    Image, ImageOps = require_pillow()
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path} is a directory; give the path of an image file")
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            if img.width == 0 or img.height == 0:
                raise ImageError(f"{path}: the image is empty (0 pixels)")
            gray = _to_gray(img, Image)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: cannot read this file as an image ({e})") from None
    if gray.size == 0:
        raise ImageError(f"{path}: the image is empty (0 pixels)")
    if not np.isfinite(gray).all():
        raise ImageError(f"{path}: the image holds NaN or infinite values")
    return np.clip(gray, 0.0, 1.0).astype(np.float32)


def _to_gray(img, Image) -> np.ndarray:
    """A Pillow image -> float64 (height, width) in [0, 1]."""
    if img.mode.startswith("I;16"):
        return np.asarray(img, dtype=np.float64) / 65535.0
    if img.mode == "I":  # 16-bit PNGs on older Pillow; 8-bit data stored wide otherwise
        arr = np.asarray(img, dtype=np.float64)
        return arr / (65535.0 if arr.size and arr.max() > 255 else 255.0)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = np.nanmax(arr) if arr.size and np.isfinite(arr).any() else 1.0
        return arr / max(1.0, float(top))
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba)
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0


def load_digit(path: PathLike) -> np.ndarray:
    """`to_mnist(load_image(path))`: a photo file -> (28, 28) float32 MNIST-style input."""
    try:
        return to_mnist(load_image(path))
    except ImageError as e:
        if str(Path(path)) in str(e):
            raise
        raise ImageError(f"{path}: {e}") from None


def save_input_image(array28: np.ndarray, path: PathLike, scale: int = 8) -> Path:
    """Write what the network saw as a grayscale PNG and return the path.

    `array28` is (28, 28) or (784,) in [0, 1], white ink on black as the network sees it.
    Each pixel becomes a `scale` x `scale` block (nearest neighbour, default 224x224) so
    the picture is visible and no smoothing hides what the network got; `scale=1` writes
    the 28x28 as it is.
    """
    Image, _ = require_pillow()
    arr = np.asarray(array28, dtype=np.float64)
    if arr.size != SIZE * SIZE or arr.ndim not in (1, 2):
        raise ImageError(f"expected a 28x28 (or 784) input image, got shape {arr.shape}")
    if int(scale) < 1:
        raise ImageError(f"scale must be a positive integer, got {scale}")
    arr = np.nan_to_num(arr.reshape(SIZE, SIZE), nan=0.0)
    pixels = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    pixels = np.repeat(np.repeat(pixels, int(scale), axis=0), int(scale), axis=1)
    path = Path(path)
    make_parent(path)
    try:
        atomic_write(path, lambda f: Image.fromarray(pixels, mode="L").save(f, format="PNG"))
    except OSError as e:
        raise ImageError(f"{path}: cannot write the image ({e})") from None
    return path


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


def _check_gray(gray: np.ndarray) -> np.ndarray:
    try:
        img = np.asarray(gray, dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageError("expected a 2-D grayscale array of numbers") from None
    if img.ndim != 2:
        raise ImageError(f"expected a 2-D grayscale array, got shape {img.shape}")
    if img.size == 0:
        raise ImageError("the image is empty (0 pixels)")
    if not np.isfinite(img).all():
        raise ImageError("the image holds NaN or infinite values")
    return np.clip(img, 0.0, 1.0)


def _background(img: np.ndarray) -> tuple[np.ndarray, bool]:
    """The background (paper and lighting) and whether it is lighter than the ink.

    The ink is the minority of pixels that departs from a smooth surface, so the polarity
    is read from the residual's tails: dark ink leaves a heavier tail below the surface
    than above it. (The border alone misleads under vignetting, where dark corners make the
    paper look mid-grey.)
    """
    background = _fit_background(img)
    resid = img - background
    spread = 1.4826 * np.median(np.abs(resid - np.median(resid)))
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
        img = _box_blur(img)
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
    diffs = np.concatenate(diffs)
    return float(np.median(diffs)) / (0.6745 * np.sqrt(2.0)) if diffs.size else 0.0


def _fit_background(img: np.ndarray) -> np.ndarray:
    """A quadratic surface through the background, ignoring the ink on either side.

    Fitted on a shrunk copy, refitting without the pixels more than 2.5 robust standard
    deviations away, until the kept set stops changing.
    """
    small = _shrink(img, 48)
    quadratic = min(small.shape) >= 8  # tiny images get a constant
    design = _terms(*_grid(small.shape), quadratic).reshape(-1, 6 if quadratic else 1)
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
    return np.broadcast_to(_terms(*_grid(img.shape), quadratic) @ coef, img.shape)


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] as fractions of the image, (h, 1) and (1, w).

    Fractions, so that a fit on a shrunk copy evaluates on the full-size grid.
    """
    h, w = shape
    return ((np.arange(h) + 0.5) / h * 2 - 1)[:, None], ((np.arange(w) + 0.5) / w * 2 - 1)[None, :]


def _terms(y: np.ndarray, x: np.ndarray, quadratic: bool) -> np.ndarray:
    """(h, w, 6) columns 1, x, y, x^2, xy, y^2, or (h, w, 1) ones."""
    y, x = np.broadcast_arrays(y, x)
    if not quadratic:
        return np.ones(y.shape + (1,))
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)


def _segment(signal: np.ndarray, noise: float) -> np.ndarray:
    """Ink signal -> soft ink image in [0, 1] with specks removed; ImageError if no digit."""
    t = _otsu(signal)
    ink = signal > t
    if not ink.any():
        raise ImageError("no digit found: the image is blank")
    level = float(np.median(signal[ink]))
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
    """Keep the 8-connected components at least SPECK_FRACTION of the largest one's area.

    Components are found on row runs (union-find over runs), so the Python loops are over
    rows and runs, not pixels.
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    step = np.diff(padded, axis=1)
    run_row, run_start = np.nonzero(step == 1)
    run_end = np.nonzero(step == -1)[1]  # exclusive; same row-major order as the starts
    n = run_row.size
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first = np.searchsorted(run_row, np.arange(h + 1))
    for r in range(h - 1):
        a = slice(first[r], first[r + 1])
        b = slice(first[r + 1], first[r + 2])
        if a.start == a.stop or b.start == b.stop:
            continue
        # 8-connectivity: runs touch when they overlap after widening one by a pixel
        touch = (run_start[a, None] <= run_end[None, b]) & (run_start[None, b] <= run_end[a, None])
        for i, j in zip(*np.nonzero(touch), strict=True):
            ri, rj = find(a.start + int(i)), find(b.start + int(j))
            if ri != rj:
                parent[rj] = ri
    roots = np.array([find(i) for i in range(n)])
    area = np.bincount(roots, weights=run_end - run_start, minlength=n)
    keep = area[roots] >= SPECK_FRACTION * area.max()
    out = np.zeros_like(mask, dtype=bool)
    for r, s, e in zip(run_row[keep], run_start[keep], run_end[keep], strict=True):
        out[r, s:e] = True
    return out


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
# Resampling and filters (NumPy only)


def _resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample to `shape`: area averaging when shrinking, bilinear when enlarging."""
    rows = _resample_matrix(img.shape[0], shape[0])
    cols = _resample_matrix(img.shape[1], shape[1])
    return rows @ img @ cols.T


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights, each row summing to 1."""
    scale = n_in / n_out
    if scale >= 1:  # output pixel o covers input [o * scale, (o + 1) * scale): exact overlap
        lo = np.arange(n_out)[:, None] * scale
        i = np.arange(n_in)[None, :]
        weights = np.clip(np.minimum(i + 1, lo + scale) - np.maximum(i, lo), 0.0, None)
    else:  # triangle kernel between pixel centres
        centres = (np.arange(n_out) + 0.5) * scale - 0.5
        weights = np.clip(1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]), 0.0, None)
        edge = centres < 0
        weights[edge, 0] = 1.0
        edge = centres > n_in - 1
        weights[edge, -1] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


def _shrink(img: np.ndarray, size: int) -> np.ndarray:
    """Area-average so that the longer side is at most `size` (whole blocks first: fast)."""
    longer = max(img.shape)
    if longer <= size:
        return img
    k = longer // size
    if k >= 2:
        h, w = (img.shape[0] // k) * k, (img.shape[1] // k) * k
        if h and w:
            img = img[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3))
    longer = max(img.shape)
    if longer <= size:
        return img
    h, w = (max(1, round(n * size / longer)) for n in img.shape)
    return _resize(img, (h, w))


def _box_blur(img: np.ndarray) -> np.ndarray:
    """3x3 mean with edge padding."""
    p = np.pad(img, 1, mode="edge")
    rows = p[:-2] + p[1:-1] + p[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0


def _max_filter(img: np.ndarray, radius: int) -> np.ndarray:
    """Maximum over a (2 radius + 1) square, separable; zero padding."""
    if radius < 1:
        return img
    out = img.astype(np.float64)
    k = 2 * radius + 1
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(out, pad), k, axis=axis)
        out = windows.max(axis=-1)
    return out


def _centre(box: np.ndarray) -> np.ndarray:
    """Paste `box` into 28x28 so its centre of mass is at (14, 14), to the nearest pixel."""
    total = box.sum()
    if not total > 0:
        raise ImageError("no digit found: nothing left after cropping")
    r = np.arange(box.shape[0]) @ box.sum(axis=1) / total
    c = np.arange(box.shape[1]) @ box.sum(axis=0) / total
    top = int(np.floor(CENTRE - r + 0.5))
    left = int(np.floor(CENTRE - c + 0.5))
    out = np.zeros((SIZE, SIZE))
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + box.shape[0], SIZE), min(left + box.shape[1], SIZE)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = box[r0 - top : r1 - top, c0 - left : c1 - left]
    peak = out.max()
    if not peak > 0:
        raise ImageError("no digit found: nothing left after centring")
    return (out / peak).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Synthetic photos


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
    field = np.clip(_box_blur(_resize(digit, (side, side))), 0.0, 1.0)
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    ink = np.zeros((h, w))
    ink[top : top + side, left : left + side] = field

    paper, tone = rng.uniform(0.6, 0.95), rng.uniform(0.0, 0.35)
    y, x = np.meshgrid(np.linspace(-0.5, 0.5, h), np.linspace(-0.5, 0.5, w), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    lighting = 1.0 + rng.uniform(0, 0.5) * (np.cos(angle) * x + np.sin(angle) * y)
    lighting -= rng.uniform(0, 0.6) * (x * x + y * y)
    texture = _resize(rng.normal(size=(8, 8)), (h, w)) * rng.uniform(0.005, 0.03)
    photo = (paper - (paper - tone) * ink + texture) * lighting
    photo += rng.normal(0.0, rng.uniform(0.003, 0.03), size=(h, w))
    return np.clip(photo, 0.0, 1.0).astype(np.float32)
