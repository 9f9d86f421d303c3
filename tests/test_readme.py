"""The README's Python examples run as written."""

import re
from pathlib import Path

import numpy as np
from PIL import Image

from digits.onnx_export import export_onnx
from nets.activations import softmax
from nets.costs import cross_entropy
from nets.data import load_dataset, prepare_images
from nets.models import make_mlp
from nets.training import TrainConfig, init_state, split, train

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_engine_example_runs():
    (block,) = [b for b in python_blocks() if "hessian(" in b]
    exec(compile(block, "README engine example", "exec"), {})


def test_the_custom_cost_example_runs(mnist_dir, monkeypatch):
    (block,) = [b for b in python_blocks() if "def smoothed_cross_entropy" in b]
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    namespace: dict = {}
    exec(compile(block, "README cost example", "exec"), namespace)
    assert namespace["state"].history[-1]["val_accuracy"] > 0.9


def test_the_onnx_example_runs(mnist_dir, tmp_path, monkeypatch, capsys):
    (block,) = [b for b in python_blocks() if "onnxruntime" in b]
    dataset = load_dataset("mnist", mnist_dir, progress=False)
    model, config = make_mlp([784, 64, 10]), TrainConfig(epochs=3, batch_size=50)
    data = split(prepare_images(dataset.train_images[:2000]),
                 dataset.train_labels[:2000].astype(int), 0, 10)
    params = train(init_state(model.init(np.random.default_rng(0)), config), model.apply,
                   cross_entropy, data, config).params
    (tmp_path / "models").mkdir()
    export_onnx("mlp", params, {**model.config, "cost": "cross-entropy"},
                tmp_path / "models" / "mnist-mlp.onnx")
    digit, label = dataset.test_images[0], dataset.test_labels[0]
    Image.fromarray(digit).save(tmp_path / "digit.png")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README ONNX example", "exec"), namespace)
    ours = softmax(model.apply(params, prepare_images(digit[None])))
    np.testing.assert_allclose(namespace["probabilities"], ours, rtol=0, atol=1e-5)
    assert capsys.readouterr().out.startswith(f"digit {label} (")
