"""The README's Python examples run as written."""

import re
from pathlib import Path

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
