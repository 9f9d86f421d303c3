"""Using models through train.py: --predict on photos, --plots, --import-notebook."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli
from idx_helpers import write_fake_mnist
from photo_fixtures import synthetic_photo
from PIL import Image

import train
from digits.datasets import load_dataset
from digits.modelfile import load_model


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fake")
    write_fake_mnist(directory, 320, 60, np.random.default_rng(3))
    return directory


@pytest.fixture(scope="module")
def model(tmp_path_factory, fake_dir) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.npz"
    assert train.main(["--data-dir", str(fake_dir), "--layers", "784,16,10", "--epochs", "2",
                       "--val-size", "50", "--save", str(path), "--quiet"]) == 0
    return path


def write_photo(path: Path, digit: np.ndarray, seed: int) -> Path:
    photo = synthetic_photo(digit, np.random.default_rng(seed))
    Image.fromarray(np.round(photo * 255).astype(np.uint8)).save(path)
    return path


def test_predict_prints_digit_and_top3_and_keeps_going_after_a_bad_file(
        capsys, tmp_path, fake_dir, model):
    digits = load_dataset("mnist", fake_dir).test_images
    good = [write_photo(tmp_path / f"d{i}.png", digits[i], i) for i in range(2)]
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((60, 40), 230, np.uint8)).save(blank)
    seen = tmp_path / "seen"
    code, out, err = cli(capsys, "--load", model, "--predict", good[0], bad, blank, good[1],
                         "--show-input", seen)
    assert code == 1  # some files failed
    lines = [line for line in out.splitlines() if "top 3" in line]
    assert [line.split(":")[0] for line in lines] == [str(good[0]), str(good[1])]
    for line in lines:
        shares = [float(p) for p in re.findall(r"(\d+(?:\.\d+)?)%", line)]
        assert len(shares) == 3 and shares == sorted(shares, reverse=True) and sum(shares) <= 100.1
    assert str(bad) in err and str(blank) in err and "no digit" in err.lower()
    assert err.count("error") == 2 and "Traceback" not in err
    for line in err.splitlines():  # each line names its file once: "error: PATH: ..."
        path = str(bad) if str(bad) in line else str(blank)
        assert line.startswith(f"error: {path}: ") and line.count(path) == 1, line
    saved = sorted(p.name for p in seen.iterdir())
    assert saved == ["d0.input.png", "d1.input.png"]


def test_predict_on_good_files_only_exits_zero(capsys, tmp_path, fake_dir, model):
    digit = load_dataset("mnist", fake_dir).test_images[0]
    code, out, _ = cli(capsys, "--load", model, "--predict", write_photo(tmp_path / "a.jpg",
                                                                          digit, 0))
    assert code == 0 and "top 3" in out


def test_evaluate_with_plots_writes_three_pngs(capsys, tmp_path, fake_dir, model):
    plots = tmp_path / "plots"
    code, out, _ = cli(capsys, "--load", model, "--evaluate", "--data-dir", fake_dir,
                       "--plots", plots)
    assert code == 0
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["confident_mistakes.png", "confusion_matrix.png", "learning_curves.png"]
    for name in names:
        with Image.open(plots / name) as image:
            assert image.width > 300 and image.height > 200


def test_training_with_plots_writes_the_learning_curves(capsys, tmp_path, fake_dir):
    plots = tmp_path / "p"
    code, _, _ = cli(capsys, "--data-dir", fake_dir, "--layers", "784,8,10", "--epochs", "2",
                     "--val-size", "50", "--save", tmp_path / "m.npz", "--quiet",
                     "--plots", plots)
    assert code == 0 and (plots / "learning_curves.png").stat().st_size > 1000


def test_plots_without_matplotlib_fail_before_training(capsys, tmp_path, fake_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = cli(capsys, "--data-dir", fake_dir, "--layers", "784,8,10", "--epochs", "1",
                       "--val-size", "50", "--save", tmp_path / "m.npz", "--plots", tmp_path)
    assert code == 1 and "pip install '.[plot]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()


def test_predict_without_pillow_says_which_extra(capsys, tmp_path, model, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    code, _, err = cli(capsys, "--load", model, "--predict", tmp_path / "x.png")
    assert code == 1 and "pip install '.[image]'" in err


@pytest.mark.parametrize("missing, module, flags, extra", [
    ("scipy", "digits.segment", ["--predict", "x.png"], "'.[image]'"),
    ("starlette", "digits.serve", ["--serve"], "'.[serve,image]'"),
])
def test_the_missing_extra_is_one_line(capsys, model, monkeypatch, missing, module, flags,
                                       extra):
    for name in [n for n in sys.modules if n.split(".")[0] == missing] or [missing]:
        monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    monkeypatch.delitem(sys.modules, module, raising=False)
    code, out, err = cli(capsys, "--load", model, *flags)
    assert code == 1 and err.count("\n") == 1 and f"pip install {extra}" in err


@pytest.fixture(scope="module")
def notebook(notebook_pkl) -> Path:
    return notebook_pkl


def test_import_notebook_reproduces_its_accuracy(capsys, tmp_path, notebook, mnist_dir):
    saved = tmp_path / "notebook.npz"
    code, out, _ = cli(capsys, "--import-notebook", notebook, "--save", saved, "--evaluate",
                       "--data-dir", mnist_dir)
    assert code == 0
    settings = load_model(saved).settings
    assert settings.layers == (784, 100, 64, 28, 10) and settings.cost == "mse"
    assert "test accuracy 96.39%" in out  # the notebook's own figure on this test set
    assert "9639/10000" in out


def test_import_refuses_a_pickle_that_calls_another_global(capsys, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(
        b"\x80\x04\x95" + (0).to_bytes(8, "little")
        + b"\x8c\x02os\x94\x8c\x06system\x94\x93\x94"
        + b"\x8c" + bytes([len(f"touch {marker}")]) + f"touch {marker}".encode()
        + b"\x94\x85\x94R\x94."
    )
    code, _, err = cli(capsys, "--import-notebook", evil, "--save", tmp_path / "m.npz")
    assert code == 1 and "refused" in err.lower() and "os" in err
    assert not marker.exists() and not (tmp_path / "m.npz").exists()


def test_predict_reads_a_whole_number_and_marks_unsure_digits(capsys, tmp_path, fake_dir,
                                                              model):
    from photo_fixtures import synthetic_strip

    digits = load_dataset("mnist", fake_dir).test_images[:3]
    photo, _ = synthetic_strip(digits, np.random.default_rng(0), noise=0.01)
    path = tmp_path / "number.png"
    Image.fromarray(np.round(photo * 255).astype(np.uint8)).save(path)
    seen = tmp_path / "seen"
    code, out, _ = cli(capsys, "--load", model, "--predict", path, "--show-input", seen)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith(str(path)))
    match = re.fullmatch(re.escape(str(path)) + r": (\d{3})  \((.*)\)", line)
    assert match, line
    each = re.findall(r"(\d)(\??) (\d+\.\d)%", match.group(2))
    assert "".join(d for d, _, _ in each) == match.group(1)
    unsure = [float(p) < 70 for _, _, p in each]
    assert [mark == "?" for _, mark, _ in each] == unsure
    assert ("? = unsure" in out) == any(unsure)
    assert sorted(p.name for p in seen.iterdir()) == [f"number.input-{i}.png" for i in (1, 2, 3)]


def test_serve_needs_a_model_and_passes_host_and_port(capsys, model, monkeypatch):
    import digits.serve

    code, _, err = cli(capsys, "--serve")
    assert code == 2 and "--serve needs --load MODEL" in err
    served = []
    monkeypatch.setattr(digits.serve, "serve", lambda m, host, port: served.append((m, host, port)))
    assert cli(capsys, "--load", model, "--serve")[0] == 0
    assert cli(capsys, "--load", model, "--serve", "--host", "0.0.0.0", "--port", "8123")[0] == 0
    (m, host, port), (_, host2, port2) = served
    assert (host, port, host2, port2) == ("127.0.0.1", 8000, "0.0.0.0", 8123)
    probabilities = m.predict_proba(np.zeros((2, 28, 28), np.float32))
    assert probabilities.shape == (2, 10) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5) and m.kind == "mlp"
