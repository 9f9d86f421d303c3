"""Tests for digits.plots: each plot writes a sensible PNG; matplotlib missing is one clear line."""

import sys

import numpy as np
import pytest

from digits import plots
from nets.errors import ConfigError, NetsError

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

DIGITS = [str(i) for i in range(10)]


def png_size(path) -> tuple[int, int]:
    assert path.stat().st_size > 1000
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def history(epochs: int, validation: bool = True) -> list[dict]:
    rows = []
    for e in range(epochs):
        loss = 0.6 * np.exp(-e / 3) + 0.05
        row = {"train_loss": loss, "train_accuracy": 1 - loss / 3}
        if validation:
            row |= {"val_loss": loss * 1.1, "val_accuracy": 1 - loss / 2.8}
        rows.append(row)
    return rows


def test_learning_curves(tmp_path):
    path = plots.plot_learning_curves(history(12), tmp_path / "curves.png")
    assert path == tmp_path / "curves.png"
    width, height = png_size(path)
    assert 800 <= width <= 2000 and 300 <= height <= 1000 and width > height


@pytest.mark.parametrize("rows", [history(3, validation=False), [
    {"train_loss": 0.5, "train_accuracy": 0.8, "val_loss": None, "val_accuracy": None}
]])
def test_learning_curves_without_validation(tmp_path, rows):
    png_size(plots.plot_learning_curves(rows, tmp_path / "curves.png"))


def test_learning_curves_need_epochs(tmp_path):
    with pytest.raises(ConfigError):
        plots.plot_learning_curves([], tmp_path / "curves.png")


def test_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 20, (10, 10)) + np.diag(rng.integers(800, 1100, 10))
    width, height = png_size(plots.plot_confusion_matrix(matrix, DIGITS, tmp_path / "cm.png"))
    assert 600 <= width <= 2000 and 600 <= height <= 2000


def test_confusion_matrix_shape_must_match_names(tmp_path):
    with pytest.raises(ConfigError, match="shape"):
        plots.plot_confusion_matrix(np.eye(3), DIGITS, tmp_path / "cm.png")


def test_confident_mistakes(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    images = rng.random((n, 784))  # flat inputs are reshaped to 28x28
    true = rng.integers(0, 10, n)
    pred = np.where(rng.random(n) < 0.5, true, (true + 1) % 10)
    confidence = rng.uniform(0.2, 1.0, n)
    path = plots.plot_confident_mistakes(
        images, true, pred, confidence, DIGITS, tmp_path / "mistakes.png", count=9
    )
    width, height = png_size(path)
    assert 400 <= width <= 1500 and 400 <= height <= 1500


def test_confident_mistakes_uint8_probabilities_and_none_wrong(tmp_path):
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    images[:, 10:18, 12:16] = 255
    labels = np.array([1, 2, 3, 4])
    probs = np.full((4, 10), 0.1)
    png_size(plots.plot_confident_mistakes(images, labels, (labels + 1) % 10, probs, DIGITS,
                                           tmp_path / "some.png"))
    png_size(plots.plot_confident_mistakes(images, labels, labels, probs, DIGITS,
                                           tmp_path / "none.png"))


def test_confident_mistakes_lengths_must_agree(tmp_path):
    with pytest.raises(ConfigError):
        plots.plot_confident_mistakes(np.zeros((3, 28, 28)), [1, 2], [1, 2], [0.5, 0.5],
                                      DIGITS, tmp_path / "x.png")


def test_wrong_answers_never_read_100_percent():
    assert plots._percent(0.97) == "97%"
    assert plots._percent(0.9996) == "99.9%"  # a wrong answer never reads as 100%


def test_without_matplotlib_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    calls = [
        lambda: plots.plot_learning_curves(history(2), tmp_path / "a.png"),
        lambda: plots.plot_confusion_matrix(np.eye(10), DIGITS, tmp_path / "b.png"),
        lambda: plots.plot_confident_mistakes(np.zeros((1, 28, 28)), [1], [2], [0.9], DIGITS,
                                              tmp_path / "c.png"),
    ]
    for call in calls:
        with pytest.raises(NetsError) as info:
            call()
        assert str(info.value) == "plots need matplotlib: pip install '.[plot]'"
    assert not list(tmp_path.iterdir())
