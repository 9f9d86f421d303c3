"""digits.threads: the command line's BLAS library single-threaded, the engine's threads on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from digits import threads
from nets.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import digits.threads as t, os; "
         "print(os.environ.get('OPENBLAS_NUM_THREADS'), t.BLAS_PINNED, t.engine_threads())")


def probe(**env: str) -> list[str]:
    """What a fresh process that imports digits.threads first sees."""
    clean = {k: v for k, v in os.environ.items()
             if k not in threads.BLAS_THREAD_VARIABLES and k != "DIGITS_THREADS"}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def test_blas_is_pinned_and_the_engine_takes_the_cores():
    blas, pinned, engine = probe()
    assert blas == "1" and pinned == "True"
    assert int(engine) == len(os.sched_getaffinity(0))
    assert probe(DIGITS_THREADS="3") == ["1", "True", "3"]


def test_a_blas_thread_count_of_the_users_is_kept_and_the_engine_stays_off():
    assert probe(OPENBLAS_NUM_THREADS="2") == ["2", "False", "1"]
    assert probe(OMP_NUM_THREADS="2")[1:] == ["False", "1"]


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_thread_count_is_one_line(monkeypatch, value):
    monkeypatch.setenv("DIGITS_THREADS", value)
    with pytest.raises(ConfigError, match="DIGITS_THREADS must be a positive integer"):
        threads.engine_threads()


def test_train_py_says_what_is_wrong_with_digits_threads(tmp_path):
    env = {**os.environ, "DIGITS_THREADS": "many"}
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--epochs", "1",
                           "--save", str(tmp_path / "m.npz")], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: DIGITS_THREADS must be a positive integer, got 'many'"]
