"""Tests for digits.photos: photo -> MNIST-style 28x28, image files; the photo fixtures."""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from digits import photos as images
from digits.datasets import load_dataset
from nets.errors import ImageError, NetsError

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("scipy.ndimage")
from photo_fixtures import naive_resize, synthetic_photo  # noqa: E402

ROWS = np.arange(28)


def centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    """MNIST convention: pixel (r, c) at coordinates (r, c), weighted by intensity."""
    total = img.sum()
    return float(ROWS @ img.sum(axis=1) / total), float(ROWS @ img.sum(axis=0) / total)


def box_side(img: np.ndarray) -> int:
    rows, cols = np.nonzero(img > 0)
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> np.ndarray:
    """All 10 000 real MNIST test digits, (10000, 28, 28) uint8."""
    return load_dataset("mnist", mnist_dir, download=False).test_images


@pytest.fixture(scope="module")
def photos(digits: np.ndarray) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [synthetic_photo(d, rng) for d in digits[:50]]


@pytest.fixture(scope="module")
def outputs(photos: list[np.ndarray]) -> list[np.ndarray]:
    return [images.to_mnist(p) for p in photos]


def test_mnist_centre_of_mass_convention(digits):
    """The target (14, 14) is what real MNIST digits have, on average, in this convention."""
    totals = digits.sum(axis=(1, 2), dtype=np.float64)
    r = (digits.sum(axis=2) @ ROWS) / totals
    c = (digits.sum(axis=1) @ ROWS) / totals
    assert abs(r.mean() - images.CENTRE) < 0.05
    assert abs(c.mean() - images.CENTRE) < 0.05


def test_synthetic_photo_looks_like_a_photo(digits):
    photo = synthetic_photo(digits[0], np.random.default_rng(1))
    assert photo.ndim == 2 and photo.dtype == np.float32
    assert 150 * 0.75 - 1 <= min(photo.shape) and max(photo.shape) <= 400
    assert 0.0 <= photo.min() and photo.max() <= 1.0
    assert np.median(photo) > 0.4  # light paper, dark ink


def test_photos_come_back_close_to_the_original(digits, outputs):
    for out in outputs:
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
    corr = [correlation(out, d) for out, d in zip(outputs, digits, strict=False)]
    assert np.mean(corr) > 0.8


def test_centre_of_mass_and_box_like_mnist(outputs):
    for out in outputs:
        r, c = centre_of_mass(out)
        assert abs(r - 14) <= 0.5 + 1e-6 and abs(c - 14) <= 0.5 + 1e-6
        assert box_side(out) == 20


def test_dark_background_gives_the_same_digit(digits, photos, outputs):
    """White chalk on a dark board (the photo inverted) works without being told."""
    dark = [images.to_mnist(1.0 - p) for p in photos[:20]]
    assert np.mean([correlation(o, d) for o, d in zip(dark, digits, strict=False)]) > 0.8
    assert np.mean([correlation(o, d) for o, d in zip(dark, outputs, strict=False)]) > 0.9


def test_specks_are_removed(digits):
    photo = synthetic_photo(digits[3], np.random.default_rng(5)).copy()
    clean = images.to_mnist(photo)
    h, w = photo.shape
    for r, c in [(2, 2), (h - 6, 3), (4, w - 7), (h - 5, w - 5)]:
        photo[r : r + 3, c : c + 3] = 0.05  # dark dots in the corners
    assert correlation(images.to_mnist(photo), clean) > 0.97


def test_thin_strokes_are_thickened():
    """A fine-pen 7 on a big page comes out with MNIST-like stroke width, not hairlines."""
    img = np.full((600, 600), 0.85)
    img[100:103, 150:450] = 0.1
    for t in range(400):
        col = int(450 - 0.5 * t)
        img[100 + t, col - 1 : col + 2] = 0.1
    out = images.to_mnist(img)
    assert out.max() == pytest.approx(1.0)
    assert 40 <= np.count_nonzero(out > 0.5) <= 120  # a hairline would be ~30, MNIST ~100


def test_blank_images_have_no_digit():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[-1:1:300j, -1:1:300j]
    blanks = [
        np.full((100, 100), 0.8),
        np.zeros((50, 80)),
        np.clip(rng.normal(0.8, 0.03, (300, 300)), 0, 1),
        np.tile(np.linspace(0.3, 0.9, 300), (300, 1)),
        np.clip(0.9 - 0.3 * (x * x + y * y) + rng.normal(0, 0.02, x.shape), 0, 1),
    ]
    for blank in blanks:
        with pytest.raises(ImageError, match="no digit found"):
            images.to_mnist(blank)


@pytest.mark.parametrize("bad", [np.zeros((0, 5)), np.zeros((4, 4, 3)), np.zeros(7)])
def test_bad_arrays_raise_image_error(bad):
    with pytest.raises(ImageError):
        images.to_mnist(bad)
    with pytest.raises(ImageError):
        naive_resize(bad)


def test_naive_resize_is_the_whole_photo_inverted(photos):
    photo = photos[0]
    out = naive_resize(photo)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert out.mean() == pytest.approx(1.0 - photo.mean(), abs=0.01)
    dark = naive_resize(1.0 - photo)
    np.testing.assert_allclose(dark, out, atol=1e-5)


@given(
    arrays(
        np.float64,
        array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
def test_random_arrays_raise_nothing_but_image_error(arr):
    for fn in (images.to_mnist, naive_resize):
        try:
            out = fn(arr)
        except ImageError:
            continue
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert np.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0


@given(arrays(np.float64, array_shapes(min_dims=2, max_dims=2, max_side=16),
              elements=st.floats(0, 1)))
def test_random_images_raise_nothing_but_image_error(arr):
    try:
        out = images.to_mnist(arr)
    except ImageError:
        return
    assert out.shape == (28, 28) and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0


# ---------------------------------------------------------------------------------------
# Files


def _digit_photo_uint8(digits) -> np.ndarray:
    photo = synthetic_photo(digits[7], np.random.default_rng(2))
    return np.round(photo * 255).astype(np.uint8)


def test_load_image_gray_png_and_jpeg(tmp_path, digits):
    pixels = _digit_photo_uint8(digits)
    for name in ("photo.png", "photo.jpg"):
        path = tmp_path / name
        Image.fromarray(pixels).save(path)
        gray = images.load_image(path)
        assert gray.shape == pixels.shape and gray.dtype == np.float32
        assert np.abs(gray - pixels / 255.0).mean() < 0.02
    assert correlation(images.load_digit(tmp_path / "photo.png"), digits[7]) > 0.8


def test_load_image_rgb(tmp_path, digits):
    pixels = _digit_photo_uint8(digits)
    path = tmp_path / "rgb.png"
    Image.fromarray(np.stack([pixels] * 3, axis=-1)).save(path)
    np.testing.assert_allclose(images.load_image(path), pixels / 255.0, atol=1 / 255)


def test_load_image_rgba_composites_onto_white(tmp_path, digits):
    """Ink drawn only in the alpha channel (transparent paper) reads as dark on white."""
    ink = digits[7]
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = ink
    path = tmp_path / "ink.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    gray = images.load_image(path)
    np.testing.assert_allclose(gray, 1.0 - ink / 255.0, atol=1.5 / 255)
    assert correlation(images.load_digit(path), ink) > 0.8


def test_load_image_palette_with_transparency(tmp_path):
    img = Image.new("P", (40, 40), 0)
    img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    img.paste(1, (10, 10, 30, 30))
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)
    gray = images.load_image(path)
    assert gray.min() == pytest.approx(1.0)  # black but transparent -> white paper


def test_load_image_16_bit(tmp_path):
    pixels = np.linspace(0, 65535, 32 * 48).reshape(32, 48).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    gray = images.load_image(path)
    assert gray.shape == (32, 48)
    np.testing.assert_allclose(gray, pixels / 65535.0, atol=1e-4)


def test_load_image_applies_exif_orientation(tmp_path):
    img = Image.new("L", (60, 20), 255)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif)
    assert images.load_image(path).shape == (60, 20)


@pytest.mark.parametrize(
    "content", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"]
)
def test_load_image_rejects_non_images(tmp_path, content):
    path = tmp_path / "notes.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="notes.png"):
        images.load_image(path)


def test_load_image_truncated_png(tmp_path, digits):
    path = tmp_path / "cut.png"
    Image.fromarray(_digit_photo_uint8(digits)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="cut.png"):
        images.load_image(path)


def test_missing_file_and_blank_file_errors_name_the_file(tmp_path):
    with pytest.raises(ImageError, match="nowhere.png"):
        images.load_image(tmp_path / "nowhere.png")
    path = tmp_path / "blank.png"
    Image.new("L", (50, 50), 230).save(path)
    with pytest.raises(ImageError, match=r"blank\.png.*no digit found"):
        images.load_digit(path)


def test_save_input_image(tmp_path, outputs):
    digit = outputs[0]
    path = images.save_input_image(digit, tmp_path / "seen.png")
    with Image.open(path) as img:
        assert img.size == (224, 224) and img.mode == "L"
        big = np.asarray(img) / 255.0
    np.testing.assert_allclose(big[::8, ::8], digit, atol=0.5 / 255 + 1e-6)
    flat = images.save_input_image(digit.ravel(), tmp_path / "small.png", scale=1)
    with Image.open(flat) as img:
        assert img.size == (28, 28)
    with pytest.raises(ImageError):
        images.save_input_image(np.zeros((20, 20)), tmp_path / "bad.png")


def test_without_pillow_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(NetsError, match=r"pip install '\.\[image\]'"):
        images.load_image(tmp_path / "x.png")
    with pytest.raises(NetsError, match=r"Pillow: pip install '\.\[image\]'"):
        images.to_mnist(np.pad(np.ones((10, 4)), 20))


def test_without_scipy_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(NetsError, match=r"scipy: pip install '\.\[image\]'"):
        images.to_mnist(np.pad(np.ones((10, 4)), 20))


# ------------------------------------------------- only our formats, bounded pixel counts

import struct  # noqa: E402
import zlib  # noqa: E402

from digits.imagefiles import FORMATS, MAX_PIXELS, load_image  # noqa: E402


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height but holds almost no data (a decompression bomb's
    header: Pillow reads the size without decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                     chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [(13000, 13000), (50000, 1001), (20000, 20000)])
def test_huge_images_are_refused_before_decoding(tmp_path, width, height):
    import tracemalloc

    path = png_header_only(tmp_path / "bomb.png", width, height)
    tracemalloc.start()
    with pytest.raises(ImageError, match=f"more than the {MAX_PIXELS:,} pixels"):
        load_image(path)
    assert tracemalloc.get_traced_memory()[1] < 20 * 2**20
    tracemalloc.stop()


def test_an_image_at_the_limit_is_read(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("L", (MAX_PIXELS // 1000, 1000), 255).save(path)
    assert load_image(path).shape == (1000, MAX_PIXELS // 1000)


@pytest.mark.parametrize("content", [
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",  # Ghostscript's
    b"P5\n2 2\n255\n\x00\x01\x02\x03",                                   # PGM: not offered
])
def test_only_the_documented_formats_are_opened(tmp_path, content):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="PNG, JPEG, GIF, BMP, TIFF, WEBP"):
        load_image(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_documented_format_is_read(tmp_path, fmt):
    path = tmp_path / f"digit.{fmt.lower()}"
    try:
        Image.new("L", (20, 20), 200).save(path, format=fmt)
    except (OSError, KeyError):
        pytest.skip(f"this Pillow cannot write {fmt}")
    assert load_image(path).shape == (20, 20)


def test_a_fifo_photo_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="FIFO"):
        load_image(fifo)
