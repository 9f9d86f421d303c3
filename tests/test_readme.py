"""The README's Python examples run as written and print what the README shows under
them: exactly where the output is deterministic, up to measured numbers where it comes
from a trained model."""

import re
from pathlib import Path

import numpy as np
from doc_blocks import python_blocks, run, same_output
from PIL import Image

from digits.datasets import load_dataset
from digits.modelfile import load_model

README = Path(__file__).resolve().parents[1] / "README.md"


def block_with(marker: str):
    (block,) = [b for b in python_blocks(README) if marker in b.code]
    return block


def without_measurements(text: str) -> str:
    """Decimal numbers (accuracies, probabilities) blanked; integers and words kept."""
    return re.sub(r"\d+\.\d+", "#", text)


def test_the_transforms_example_runs():
    namespace: dict = {}
    run(block_with("hvp("), namespace, "README transforms example")
    assert namespace["curvature"].shape == (3,)


def test_every_python_block_shows_its_output_or_prints_nothing():
    for block in python_blocks(README):
        if block.expected is None:
            assert "print(" not in block.code, f"the block at line {block.line} prints " \
                "something the README does not show"


def test_the_engine_example_prints_what_the_readme_shows():
    block = block_with("hessian(")
    assert block.expected is not None
    actual = run(block, {}, "README engine example")
    assert same_output(actual, block.expected), actual


def test_the_custom_cost_is_cross_entropy_when_nothing_is_smoothed():
    from autodiff import grad
    from nets.costs import cross_entropy

    namespace: dict = {}
    run(block_with("def smoothed_cross_entropy"), namespace, "README cost example")
    cost = namespace["smoothed_cross_entropy"]
    rng = np.random.default_rng(0)
    logits, targets = rng.standard_normal((4, 10)), np.eye(10)[[1, 2, 3, 4]]
    assert np.isclose(cost(logits, targets, 0.0), cross_entropy(logits, targets))
    # Its gradient is (softmax - smoothed targets) / batch, so smoothing moves it.
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    smoothed = targets * 0.9 + 0.01
    np.testing.assert_allclose(grad(cost)(logits, targets), (softmax - smoothed) / 4)


def test_the_model_example_prints_the_summary_the_readme_shows(mnist_dir, monkeypatch,
                                                                tmp_path):
    import train

    block = block_with("load_model(")
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    monkeypatch.chdir(tmp_path)
    assert train.main(["--epochs", "1", "--quiet"]) == 0  # the default network, briefly
    namespace: dict = {}
    actual = run(block, namespace, "README model example")
    assert namespace["probabilities"].shape == (5, 10)
    assert block.expected is not None
    assert same_output(without_measurements(actual), without_measurements(block.expected)), \
        actual


def test_the_onnx_example_runs(mnist_dir, tmp_path, monkeypatch):
    import train

    block = block_with("onnxruntime")
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
    actual = run(block, namespace, "README ONNX example")
    ours = load_model("models/mnist-mlp.npz").predict_proba(digit[None] / np.float32(255))
    np.testing.assert_allclose(namespace["probabilities"], ours, rtol=0, atol=1e-5)
    assert actual.startswith(f"digit {label} (")
    assert same_output(without_measurements(actual), without_measurements(block.expected))
