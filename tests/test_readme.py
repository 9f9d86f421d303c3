"""The README's Python examples run as written."""

import re
from pathlib import Path

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
