"""Image files: read a photo as grayscale, write what the network saw.

Only the formats in `FORMATS` are opened (Pillow's `formats=`), so a PostScript or other
file named `.jpg` never reaches a plugin that runs an external program. The size is read
from the header and checked against `MAX_PIXELS` before any pixel is decoded.

Pillow (the `image` extra) is imported when first needed, so this module imports without
it; without it each function raises `ImageError` saying what to install.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from digits.files import NotRegularFile, atomic_write, make_parent, open_regular
from nets.errors import ImageError

SIZE = 28
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
MAX_PIXELS = 50_000_000  # a 50-megapixel photo: about 1.6 GB while it is prepared
PILLOW_HINT = "reading and writing images needs Pillow: pip install '.[image]'"

PathLike = str | os.PathLike[str]


def require_pillow():
    """Pillow's Image and ImageOps modules, or ImageError saying how to install Pillow."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImageError(PILLOW_HINT) from None
    return Image, ImageOps


def _reason(error: Exception, path: Path) -> str:
    """Pillow's or the OS's message without the path, which the line already starts with."""
    text = str(error)
    for form in (repr(str(path)), str(path)):
        text = text.replace(form, "")
    return text.strip().rstrip(":") or type(error).__name__


def load_image(path: PathLike) -> np.ndarray:
    """Read a PNG, JPEG, GIF, BMP, TIFF or WEBP file as grayscale float32 in [0, 1], shape
    (height, width), refusing images of more than MAX_PIXELS before decoding them.

    EXIF orientation is applied; transparent pixels (RGBA, LA, palette transparency) are
    composited onto white paper; 16-bit and 32-bit grayscale are scaled by their range.
    Raises ImageError naming the file when it is missing, not an image, truncated or empty.
    """
    Image, ImageOps = require_pillow()
    path = Path(path)
    try:
        with open_regular(path) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
            img = Image.open(f, formats=FORMATS)
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(_too_big(path, img.width, img.height))
            img.load()
            img = ImageOps.exif_transpose(img) or img
            if img.width == 0 or img.height == 0:
                raise ImageError(f"{path}: the image is empty (0 pixels)")
            gray = _to_gray(img, Image)
    except ImageError:
        raise
    except IsADirectoryError:
        raise ImageError(f"{path} is a directory; give the path of an image file") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file") from None
    except NotRegularFile as e:
        raise ImageError(f"{e}; give the path of an image file") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image in a format this program reads "
                         f"({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError:
        raise ImageError(_too_big(path)) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: cannot read this file as an image ({_reason(e, path)})") \
            from None
    if gray.size == 0:
        raise ImageError(f"{path}: the image is empty (0 pixels)")
    if not np.isfinite(gray).all():
        raise ImageError(f"{path}: the image holds NaN or infinite values")
    return np.clip(gray, 0.0, 1.0).astype(np.float32)


def _too_big(path: Path, width: int = 0, height: int = 0) -> str:
    size = f"{width}x{height} pixels" if width else "too many pixels"
    return (f"{path}: the image is {size}, more than the {MAX_PIXELS:,} pixels this program "
            "reads; scale it down")


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
