"""digits.allocator: after keep_freed_memory, freeing and reallocating a large array costs
no page faults; without it, glibc maps fresh pages each time."""

import subprocess
import sys
from pathlib import Path

import pytest

from digits.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parents[1]

# Page faults per reallocation of a 40 MB array (above glibc's largest automatic mmap
# threshold, 32 MB, so without the setting every one is a fresh mapping).
COUNT_FAULTS = """
import resource, sys
import numpy as np
from digits.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(10_000_000, np.float32); del a
before = faults()
for _ in range(10):
    a = np.ones(10_000_000, np.float32); del a
print(applied, (faults() - before) / 10)
"""


def faults_per_allocation(mode: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", COUNT_FAULTS, mode], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split()
    return out[0], float(out[1])


def test_freed_memory_is_reused_without_page_faults():
    if sys.platform != "linux":
        pytest.skip("mallopt is glibc's: on this platform keep_freed_memory does nothing")
    applied, kept = faults_per_allocation("keep")
    if applied != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    _, default = faults_per_allocation("default")
    assert kept < 5
    assert default > 100  # a 40 MB block is 10,000 pages; huge pages make it fewer


def test_does_nothing_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
