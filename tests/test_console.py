"""digits.console: one line and an exit code for every way a run ends."""

import pytest

from digits import console
from nets.errors import DataError, RunInterrupted


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("DIGITS_DEBUG", raising=False)
    monkeypatch.setattr(console.sys, "argv", ["train.py"])


@pytest.mark.parametrize("error, code, line", [
    (RunInterrupted("interrupted by SIGTERM at epoch 2", 143), 143, "interrupted by SIGTERM"),
    (KeyboardInterrupt(), 130, "interrupted; nothing was saved"),
    (DataError("x.gz is truncated"), 1, "error: x.gz is truncated"),
    (MemoryError(), 1, "error: out of memory"),
    (OSError(28, "No space left on device", "/data/m.npz"),
     1, "error: /data/m.npz: No space left on device"),
    (PermissionError(13, "Permission denied"), 1, "error: Permission denied"),
])
def test_each_ending_is_one_line(capsys, error, code, line):
    assert console.finish(error) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(line)


def test_debug_raises_all_but_a_clean_stop(capsys):
    for error in (DataError("x"), MemoryError(), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            console.finish(error, debug=True)
    assert console.finish(RunInterrupted("stopped", 129), debug=True) == 129


def test_bugs_keep_their_tracebacks():
    for error in (ValueError("a bug"), TypeError("another"), KeyError("k")):
        with pytest.raises(type(error)):
            console.finish(error)
