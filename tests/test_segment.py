"""digits.segment: every digit of a photographed number, in order, with its box."""

import re

import numpy as np
import pytest
from photo_fixtures import synthetic_strip

from digits.datasets import load_dataset
from digits.segment import (
    LOW_CONFIDENCE,
    Reading,
    find_digits,
    number_line,
    read_number,
    save_seen,
)
from nets.errors import ImageError


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    data = load_dataset("mnist", mnist_dir, download=False, progress=False)
    return data.test_images, data.test_labels.astype(int)


def iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.parametrize("seed", range(12))
def test_strips_of_real_digits_give_the_count_order_and_boxes(mnist_test, seed):
    images, _ = mnist_test
    rng = np.random.default_rng(seed)
    count = int(rng.integers(2, 7))
    photo, truth = synthetic_strip(images[rng.choice(len(images), count)], rng,
                                   dark_ink=seed % 4 != 3)
    found = find_digits(photo)
    assert len(found) == count
    for (image, box), want in zip(found, truth, strict=True):
        assert image.shape == (28, 28) and image.dtype == np.float32
        assert 0 <= image.min() and image.max() == pytest.approx(1.0)
        assert iou(box, want) > 0.7, (box, want)
    lefts = [box[0] for _, box in found]
    assert lefts == sorted(lefts)


def test_boxes_are_in_the_pixels_of_a_large_photo(mnist_test):
    images, _ = mnist_test
    rng = np.random.default_rng(5)
    photo, truth = synthetic_strip(images[:3], rng)
    big = np.kron(photo, np.ones((12, 12), np.float32))  # past the working size: shrunk
    assert max(big.shape) > 1600
    found = find_digits(big)
    assert len(found) == 3
    for (_, box), want in zip(found, truth, strict=True):
        assert iou(box, [12 * v for v in want]) > 0.7


def blank(h=120, w=300, level=0.85) -> np.ndarray:
    return np.full((h, w), level, np.float32)


def bar(img, top, left, bottom, right, level=0.1):
    img[top:bottom, left:right] = level


def test_the_pieces_of_one_digit_are_merged_and_specks_dropped():
    img = blank()
    bar(img, 20, 30, 90, 40)  # a 1
    bar(img, 20, 120, 30, 160)  # a 5 whose top bar is apart from its body
    bar(img, 40, 120, 90, 130)
    bar(img, 60, 130, 70, 160)
    bar(img, 70, 150, 90, 160)
    bar(img, 80, 120, 90, 160)
    bar(img, 10, 250, 12, 252)  # dust
    bar(img, 100, 80, 103, 83)
    found = find_digits(img)
    assert [box for _, box in found] == [(30, 20, 40, 90), (120, 20, 160, 90)]


def test_digits_side_by_side_stay_apart():
    img = blank()
    bar(img, 20, 30, 90, 40)
    bar(img, 20, 60, 90, 70)  # 20 px to the right: another digit
    assert len(find_digits(img)) == 2


def test_light_ink_on_a_dark_board():
    img = blank(level=0.1)
    bar(img, 20, 30, 90, 42, level=0.9)
    bar(img, 20, 200, 90, 212, level=0.9)
    assert [box[0] for _, box in find_digits(img)] == [30, 200]


@pytest.mark.parametrize("photo", [
    blank(),  # empty paper
    blank() + np.random.default_rng(0).normal(0, 0.01, (120, 300)).astype(np.float32),
    np.linspace(0.3, 0.9, 300, dtype=np.float32)[None, :].repeat(120, 0),  # lighting only
])
def test_no_digit_is_a_clear_error(photo):
    with pytest.raises(ImageError, match="no digit"):
        find_digits(photo)


def test_specks_alone_are_no_digit():
    img = blank()
    bar(img, 10, 10, 12, 12)
    bar(img, 80, 200, 82, 203)
    bar(img, 50, 100, 90, 140, level=0.83)  # too faint to be ink
    with pytest.raises(ImageError, match="no digit"):
        find_digits(img)


@pytest.mark.parametrize("bad", [np.zeros((0, 5)), np.zeros((3, 4, 3)),
                                 np.full((10, 10), np.nan)])
def test_bad_arrays_are_refused(bad):
    with pytest.raises(ImageError):
        find_digits(bad)


def test_read_number_reads_the_digits_of_a_strip_in_one_batch(mnist_test):
    images, labels = mnist_test
    rng = np.random.default_rng(7)
    pick = rng.choice(len(images), 4, replace=False)
    photo, _ = synthetic_strip(images[pick], rng)
    calls = []

    def oracle(batch):  # knows which MNIST digit each prepared image came from
        calls.append(batch.shape)
        out = np.full((len(batch), 10), 0.01, np.float32)
        out[np.arange(len(batch)), labels[pick]] = 0.91
        out[0] = 0.1  # the first one: unsure
        return out

    readings = read_number(photo, oracle)
    assert calls == [(4, 28, 28)]
    assert all(isinstance(r, Reading) for r in readings)
    assert [r.digit for r in readings[1:]] == list(labels[pick][1:])
    assert [r.unsure for r in readings] == [True, False, False, False]
    assert readings[1].confidence == pytest.approx(0.91)


def reading(digit: int, confidence: float) -> Reading:
    p = np.full(10, (1 - confidence) / 9, np.float32)
    p[digit] = confidence
    return Reading(digit, confidence, p, (0, 0, 10, 10), np.eye(28, dtype=np.float32))


def test_the_line_of_one_digit_is_its_top_three():
    names = [str(i) for i in range(10)]
    line = number_line("a.png", [reading(7, 0.9)], names)
    assert re.fullmatch(r"a\.png: 7   \(top 3: 7 90\.0%, \d 1\.1%, \d 1\.1%\)", line), line
    unsure = number_line("a.png", [reading(3, 0.5)], names)
    assert unsure.startswith("a.png: 3?   (top 3: 3 50.0%")
    assert unsure.endswith(f"\n  ? = unsure: confidence below {LOW_CONFIDENCE:.0%}")


def test_the_line_of_a_number_marks_the_unsure_digits():
    names = [str(i) for i in range(10)]
    line = number_line("n.png", [reading(1, 0.999), reading(5, 0.6), reading(4, 0.97)], names)
    assert line == ("n.png: 154  (1 99.9%, 5? 60.0%, 4 97.0%)\n"
                    f"  ? = unsure: confidence below {LOW_CONFIDENCE:.0%}")
    assert "unsure" not in number_line("n.png", [reading(1, 0.9), reading(2, 0.9)], names)


def test_what_the_network_saw_is_one_image_per_digit(tmp_path):
    one = save_seen([reading(7, 0.9)], tmp_path / "seen", "photos/a.jpg")
    assert [p.name for p in one] == ["a.input.png"] and one[0].exists()
    many = save_seen([reading(1, 0.9), reading(2, 0.9)], tmp_path / "seen", "b.png")
    assert [p.name for p in many] == ["b.input-1.png", "b.input-2.png"]
    assert all(p.exists() for p in many)
