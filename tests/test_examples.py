"""The examples run as a user runs them (a fresh process, `EXAMPLES_QUICK=1` for short
runs), print what the README says they print, and stay short."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import same_output

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, mnist_dir: Path | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXAMPLES_QUICK": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    if mnist_dir is not None:
        env["MNIST_DIR"] = str(mnist_dir)
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def readme_output(name: str) -> str:
    """The ```text block the README shows under `python examples/NAME`."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"```sh\npython examples/{re.escape(name)}\n```\n\n```text\n(.*?)```",
                      text, re.S)
    assert match, f"the README shows no output for examples/{name}"
    return match[1]


def shape_of(output: str) -> list[str]:
    """Each line with its numbers (and the spaces aligning them) blanked: what a quick run
    and a full one share."""
    return [re.sub(r"\s*\d+(\.\d+)?", " N", line) for line in output.strip().splitlines()]


def test_minimal_mlp_learns_and_fits_on_one_screen(mnist_dir):
    source = (EXAMPLES / "minimal_mlp.py").read_text()
    assert len(source.splitlines()) <= 42
    out = run_example("minimal_mlp.py", mnist_dir)
    assert shape_of(out) == shape_of(readme_output("minimal_mlp.py"))
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)", out)]
    assert len(losses) == 6 and losses[-1] < losses[0] / 2
    assert float(re.search(r"test accuracy (\d+\.\d+)%", out)[1]) > 80


def test_custom_cost_trains_through_the_loop(mnist_dir):
    out = run_example("custom_cost.py", mnist_dir)
    assert re.fullmatch(r"epoch 1  val accuracy \d+\.\d+%\ntest accuracy \d+\.\d+%\n", out)
    assert float(re.search(r"test accuracy (\d+\.\d+)%", out)[1]) > 85
    shown = shape_of(readme_output("custom_cost.py"))
    assert shown[-1] == shape_of(out)[-1] and set(shown[:-1]) == {shape_of(out)[0]}


def test_check_my_gradient_prints_exactly_what_the_readme_shows():
    out = run_example("check_my_gradient.py")
    assert same_output(out, readme_output("check_my_gradient.py"))
    assert "cube with a wrong rule, caught:" in out


@pytest.mark.parametrize("name", ["minimal_mlp.py", "custom_cost.py", "check_my_gradient.py"])
def test_each_example_is_in_the_readme(name):
    assert f"python examples/{name}" in (ROOT / "README.md").read_text()
