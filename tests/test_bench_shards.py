"""bench/shards.py runs and prints its five figures per recipe (a smoke test; the figures
themselves are measurements, quoted in the README)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_shards_bench_prints_whole_and_shards_on_one_and_two_threads_and_a_helper():
    env = dict(os.environ, DIGITS_THREADS="2")
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "bench/shards.py", "--repeats", "1", "--steps", "1",
                           "--batch", "8"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for recipe in ("cnn", "mlp"):
        assert f"{recipe}, batch 8 in shards of at most 4 rows:" in done.stdout
    rows = re.findall(r"^  (whole|shards|helper), (1 thread|2 threads) +[\d.]+ \(",
                      done.stdout, re.M)
    assert len(rows) == 10 and len(set(rows)) == 5  # a helper process on 2 threads only
    assert ("helper", "2 threads") in rows and ("helper", "1 thread") not in rows
