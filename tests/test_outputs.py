"""digits.outputs: where a run writes, and what it refuses to destroy."""

import os

import pytest

from digits.outputs import Files, beside, check_outputs
from nets.errors import ConfigError


def test_defaults_and_resumed_runs():
    files = Files.chosen("mnist-mlp", None, None, None, 1)
    assert (files.save, files.checkpoint) == ("models/mnist-mlp.npz",
                                              "models/mnist-mlp.checkpoint.npz")
    files = Files.chosen("x", None, None, None, 1, resume="runs/a.checkpoint.npz")
    assert (files.save, files.checkpoint) == ("runs/a.npz", "runs/a.checkpoint.npz")
    files = Files.chosen("x", "out/m.npz", None, None, 1, resume="runs/c.npz")
    assert (files.save, files.checkpoint) == ("out/m.npz", "runs/c.npz")
    assert Files.chosen("x", "m.npz", None, None, 1, no_checkpoint=True).checkpoint is None


@pytest.mark.parametrize("checkpoint, model", [
    ("a.checkpoint.npz", "a.npz"), ("c.npz", "c.model.npz"), ("dir/ck", "dir/ck.model.npz")])
def test_beside(checkpoint, model):
    assert beside(checkpoint) == model


def test_existing_files_are_refused_unless_overwrite(tmp_path):
    files = Files.chosen("x", str(tmp_path / "m.npz"), None, None, 1)
    files.check(overwrite=False)
    (tmp_path / "m.checkpoint.npz").write_bytes(b"an earlier run")
    with pytest.raises(ConfigError, match=r"--resume .*m\.checkpoint\.npz.*--overwrite"):
        files.check(overwrite=False)
    os.remove(tmp_path / "m.checkpoint.npz")
    (tmp_path / "m.npz").write_bytes(b"an earlier model")
    with pytest.raises(ConfigError, match="an earlier model.*--overwrite"):
        files.check(overwrite=False)
    files.check(overwrite=True)
    assert (tmp_path / "m.npz").read_bytes() == b"an earlier model"


def test_a_resumed_run_may_replace_its_own_checkpoint_only(tmp_path):
    (tmp_path / "a.checkpoint.npz").write_bytes(b"")
    Files.chosen("x", None, None, None, 1, resume=str(tmp_path / "a.checkpoint.npz")).check(False)
    (tmp_path / "a.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match="a.npz already exists"):
        Files.chosen("x", None, None, None, 1,
                     resume=str(tmp_path / "a.checkpoint.npz")).check(False)


def test_save_and_checkpoint_at_one_path(tmp_path):
    path = str(tmp_path / "m.npz")
    with pytest.raises(ConfigError, match="the same file"):
        Files.chosen("x", path, path, None, 1).check(True)


def test_check_outputs(tmp_path):
    check_outputs(str(tmp_path / "r.json"), str(tmp_path / "plots"), str(tmp_path / "seen"))
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match="--report"):
        check_outputs(str(tmp_path / "dir"), None)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--plots"):
        check_outputs(None, str(tmp_path / "file"))
