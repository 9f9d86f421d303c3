"""bench/instructions.py: the process valgrind counts runs each contender, and the count is
read from callgrind's report. (Counting itself needs valgrind and minutes; its figures
are quoted in the README.)"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from instructions import instructions  # noqa: E402


@pytest.mark.parametrize("name", ["ours (autodiff)", "NumPy by hand"])
def test_the_counted_process_makes_its_calls(name):
    done = subprocess.run([sys.executable, "bench/instructions.py", "--child", name, "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_the_count_is_read_from_callgrinds_report():
    report = "==123== Events    : Ir\n==123== Collected : 5623134930\n==123==\n" \
             "==123== I   refs:      5,623,134,930\n"
    assert instructions(report) == 5_623_134_930
    with pytest.raises(RuntimeError, match="no instruction count"):
        instructions("==123== ERROR SUMMARY: 0 errors\n")
