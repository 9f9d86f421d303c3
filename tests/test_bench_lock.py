"""bench/lock.py runs and prints its five figures (a smoke test; the figures themselves are
measurements, quoted in the README)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_lock_bench_prints_a_figure_for_each_setting():
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "bench/lock.py", "--repeats", "1", "--steps", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "batch 128 in shards of 64 rows" in done.stdout  # two shards, whatever the recipe
    names = re.findall(r"^  (.+?) +[\d.]+ \([\d.]+-[\d.]+\)$", done.stdout, re.M)
    assert names == ["one shard alone", "one shard next to a product",
                     "one shard next to a free shard", "two shards together (per step)",
                     "Adam's update"]
