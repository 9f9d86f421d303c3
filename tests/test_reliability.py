"""train.py as users run it, in child processes: Ctrl-C, kill -9 and divergence mid-run, and
resuming from the checkpoint to the same parameters, bit for bit, as a run never stopped.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from idx_helpers import write_fake_mnist

import train
from autodiff import tree_leaves
from digits.modelfile import load_checkpoint, load_model
from nets.errors import TrainingDiverged

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 12  # about 0.2 s each on 2950 images in batches of 32: a run of a few seconds
TIMEOUT = 120  # no child may hang the suite

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def child_env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DIGITS_DEBUG", None)
    # One BLAS thread: the machine is shared, and the runs compared must do the same sums.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def command(*args) -> list[str]:
    return [sys.executable, "train.py", *(str(a) for a in args)]


def run_child(*args) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), cwd=REPO, env=child_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)


class Child:
    """A train.py process with its output in files (no pipe can fill up and block it)."""

    def __init__(self, tmp_path: Path, *args) -> None:
        self.out_path, self.err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(command(*args), cwd=REPO, env=child_env(),
                                         stdout=out, stderr=err)

    def wait_for(self, path: Path) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not path.exists():
            assert self.proc.poll() is None, f"train.py ended early:\n{self.stderr}"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)

    def wait(self) -> int:
        return self.proc.wait(timeout=TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=TIMEOUT)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()


@pytest.fixture
def child_processes():
    started = []
    yield lambda *args: started.append(Child(*args)) or started[-1]
    for child in started:
        child.kill()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fake-mnist-3000")
    write_fake_mnist(directory, 3000, 100, np.random.default_rng(7))
    return directory


def training_args(data_dir: Path) -> list:
    return ["--data-dir", data_dir, "--layers", "784,16,10", "--epochs", EPOCHS,
            "--val-size", 50, "--batch-size", 32, "--seed", 3, "--quiet"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_dir) -> Path:
    """The model of a run with the same arguments that was never stopped."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    model = directory / "m.npz"
    done = run_child(*training_args(data_dir), "--save", model,
                     "--checkpoint", directory / "c.npz")
    assert done.returncode == 0, done.stderr
    return model


def assert_same_model(a: Path, b: Path) -> None:
    (params_a, meta_a), (params_b, meta_b) = ((m.params, m.meta) for m in map(load_model, (a, b)))
    leaves_a, leaves_b = tree_leaves(params_a), tree_leaves(params_b)
    assert len(leaves_a) == len(leaves_b) == 4
    for x, y in zip(leaves_a, leaves_b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y), "resumed parameters differ from the uninterrupted run's"
    assert meta_a["test_loss"] == meta_b["test_loss"]
    assert len(meta_a["history"]) == len(meta_b["history"]) == EPOCHS


def resume(checkpoint: Path, model: Path) -> None:
    done = run_child("--resume", checkpoint, "--epochs", EPOCHS, "--quiet", "--save", model)
    assert done.returncode == 0, done.stderr
    assert model.exists()


# --------------------------------------------------------------------- interruptions


def test_ctrl_c_saves_a_checkpoint_and_resuming_matches_an_uninterrupted_run(
        tmp_path, data_dir, uninterrupted, child_processes):
    model, checkpoint = tmp_path / "m.npz", tmp_path / "c.npz"
    child = child_processes(tmp_path, *training_args(data_dir), "--save", model,
                            "--checkpoint", checkpoint)
    child.wait_for(checkpoint)  # the first epoch is done: the handler is installed
    child.proc.send_signal(signal.SIGINT)
    assert child.wait() == 130, child.stderr

    err = child.stderr
    assert "Traceback" not in err
    assert f"checkpoint saved to {checkpoint}" in err
    assert f"--resume {checkpoint}" in err
    assert not model.exists()
    state, run = load_checkpoint(str(checkpoint))
    stopped = re.search(r"interrupted by Ctrl-C at epoch (\d+), step (\d+)", err)
    assert stopped and (state.epoch + 1, state.step) == tuple(map(int, stopped.groups()))
    assert 1 <= state.epoch < EPOCHS and state.step >= 1  # stopped after a step, mid-run
    assert "save" not in run and run["data"]["examples"] == 3000  # no path to write to

    resume(checkpoint, model)
    assert_same_model(model, uninterrupted)


def test_kill_9_then_resume_from_the_last_checkpoint_matches(
        tmp_path, data_dir, uninterrupted, child_processes):
    model, checkpoint = tmp_path / "m.npz", tmp_path / "c.npz"
    child = child_processes(tmp_path, *training_args(data_dir), "--save", model,
                            "--checkpoint", checkpoint)
    child.wait_for(checkpoint)
    first = checkpoint.stat().st_mtime_ns
    while checkpoint.stat().st_mtime_ns == first:  # a second checkpoint: killed mid-run
        assert child.proc.poll() is None, child.stderr
        time.sleep(0.005)
    time.sleep(0.05)
    assert child.proc.poll() is None, "the run ended before it could be killed"
    child.proc.kill()
    assert child.wait() == -signal.SIGKILL
    assert not model.exists()

    state, _ = load_checkpoint(str(checkpoint))  # intact despite the kill
    assert 2 <= state.epoch < EPOCHS and state.step == 0
    resume(checkpoint, model)
    assert_same_model(model, uninterrupted)


def test_resume_refuses_settings_the_checkpoint_fixes(capsys, tmp_path):
    for flag, value in (("--lr", "0.1"), ("--layers", "784,32,10"), ("--batch-size", "8"),
                        ("--seed", "1"), ("--optimizer", "sgd")):
        with pytest.raises(SystemExit) as exit_:
            train.main(["--resume", str(tmp_path / "c.npz"), flag, value])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and f"drop {flag}" in err


def test_resume_from_a_missing_or_foreign_file(capsys, tmp_path, uninterrupted):
    for path, words in ((tmp_path / "none.npz", "no such"), (uninterrupted, "not a training")):
        assert train.main(["--resume", str(path), "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1
        assert str(path) in err and words in err


# ------------------------------------------------------------------------ divergence


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fake-mnist-300")
    write_fake_mnist(directory, 300, 60, np.random.default_rng(8))
    return directory


def diverging_args(small_dir: Path, tmp_path: Path, batch_size: int) -> list:
    return ["--data-dir", small_dir, "--layers", "784,16,10", "--epochs", 5, "--val-size", 50,
            "--optimizer", "sgd", "--lr", "1e10", "--batch-size", batch_size, "--quiet",
            "--save", tmp_path / "m.npz", "--checkpoint", tmp_path / "c.npz"]


def assert_diverged_message(err: str) -> tuple[int, int]:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged"), err
    assert "smaller learning rate" in lines[0] and "--lr" in lines[0]
    where = re.search(r"at epoch (\d+), step (\d+)", lines[0])
    assert where, lines[0]
    return int(where[1]), int(where[2])


def test_divergence_after_a_good_epoch_keeps_its_checkpoint(tmp_path, small_dir):
    # Full batch: epoch 1's single step is fine, then the outputs overflow.
    done = run_child(*diverging_args(small_dir, tmp_path, 0))
    assert done.returncode == 1
    epoch, step = assert_diverged_message(done.stderr)
    assert epoch >= 2 and step == 1
    assert not (tmp_path / "m.npz").exists()
    assert f"checkpoint (epoch {epoch - 1}) is kept at {tmp_path / 'c.npz'}" in done.stderr
    state, _ = load_checkpoint(str(tmp_path / "c.npz"))
    assert state.epoch == epoch - 1
    assert all(np.isfinite(entry["val_loss"]) for entry in state.history)


def test_divergence_in_the_first_epoch_writes_nothing(tmp_path, small_dir):
    done = run_child(*diverging_args(small_dir, tmp_path, 32))
    assert done.returncode == 1
    epoch, step = assert_diverged_message(done.stderr)
    assert epoch == 1 and step > 1
    assert "no checkpoint was written" in done.stderr
    assert not (tmp_path / "m.npz").exists() and not (tmp_path / "c.npz").exists()


def test_divergence_with_debug_raises(tmp_path, small_dir):
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, step \d+"):
        train.main([str(a) for a in diverging_args(small_dir, tmp_path, 0)] + ["--debug"])
    assert not (tmp_path / "m.npz").exists()


def test_divergence_without_validation_data_saves_no_model(capsys, tmp_path, small_dir):
    # Nothing checks the outputs of the last update but the test evaluation: parameters
    # still finite, outputs overflowing.
    args = diverging_args(small_dir, tmp_path, 0)
    args[args.index("--lr") + 1] = "1e20"
    args[args.index("--val-size") + 1] = 0
    args[args.index("--epochs") + 1] = 1
    assert train.main([str(a) for a in args]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "after epoch 1" in err
    assert "training diverged" in err and "smaller learning rate" in err
    assert not (tmp_path / "m.npz").exists()
    assert load_checkpoint(str(tmp_path / "c.npz"))[0].epoch == 1
