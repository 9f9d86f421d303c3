"""The README's Python examples run as written."""

import re
from pathlib import Path

import numpy as np
from PIL import Image

from digits.datasets import load_dataset
from digits.modelfile import load_model

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_engine_example_runs():
    (block,) = [b for b in python_blocks() if "hessian(" in b]
    exec(compile(block, "README engine example", "exec"), {})


def test_the_transforms_example_runs():
    (block,) = [b for b in python_blocks() if "hvp(" in b]
    namespace: dict = {}
    exec(compile(block, "README transforms example", "exec"), namespace)
    assert namespace["curvature"].shape == (3,)


def test_the_custom_cost_example_runs(mnist_dir, monkeypatch):
    (block,) = [b for b in python_blocks() if "def smoothed_cross_entropy" in b]
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    namespace: dict = {}
    exec(compile(block, "README cost example", "exec"), namespace)
    assert namespace["state"].history[-1]["val_accuracy"] > 0.9


def test_the_model_example_runs(mnist_dir, monkeypatch, tmp_path, capsys):
    import train

    (block,) = [b for b in python_blocks() if "load_model(" in b]
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.chdir(tmp_path)
    assert train.main(["--layers", "784,16,10", "--epochs", "1", "--quiet"]) == 0
    namespace: dict = {}
    exec(compile(block, "README model example", "exec"), namespace)
    assert namespace["probabilities"].shape == (5, 10)
    assert "test accuracy" in capsys.readouterr().out


def test_the_onnx_example_runs(mnist_dir, tmp_path, monkeypatch, capsys):
    import train

    (block,) = [b for b in python_blocks() if "onnxruntime" in b]
    (command,) = [line for line in README.read_text().splitlines()
                  if line.startswith("python train.py") and "--export-onnx" in line]
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.chdir(tmp_path)
    assert train.main(["--layers", "784,64,10", "--epochs", "1", "--quiet"]) == 0
    assert train.main(command.split()[2:]) == 0
    dataset = load_dataset("mnist", mnist_dir, progress=False)
    digit, label = dataset.test_images[0], dataset.test_labels[0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    namespace: dict = {}
    exec(compile(block, "README ONNX example", "exec"), namespace)
    ours = load_model("models/mnist-mlp.npz").predict_proba(digit[None] / np.float32(255))
    np.testing.assert_allclose(namespace["probabilities"], ours, rtol=0, atol=1e-5)
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"digit {label} (")
