"""The helper process: calls made in a forked child give the caller's own results, bit for
bit; a late, failing, killed or interrupted child never costs a result; the child ends
with its caller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autodiff import helper, parallel, tree_leaves, value_and_grad
from autodiff import numpy as anp

pytestmark = pytest.mark.skipif(not helper.available(), reason="helper processes need fork")

ROOT = Path(__file__).resolve().parents[1]
PARENT = os.getpid()


def loss(params, x, weight):
    hidden = anp.tanh(x @ params["w"] + params["b"])
    return anp.mean(hidden ** 2) * weight, hidden


step = value_and_grad(loss, has_aux=True)


def example(rows=6, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal((5, 3)).astype(dtype),
              "b": rng.standard_normal(3).astype(dtype)}
    return params, rng.standard_normal((rows, 5)).astype(dtype), 0.25


@pytest.fixture
def made(monkeypatch):
    """A helper for `step`, closed after the test. The caller waits for the child's
    answers as long as it takes: these calls are far shorter than a process's wake-up."""
    monkeypatch.setattr(helper, "LEAST_WAIT", 30.0)
    helpers = []

    def make(fun=step, args=None):
        args = args or example()
        helpers.append(helper.HelperProcess(fun, args, fun(*args)))
        return helpers[-1]

    yield make
    for made_helper in helpers:
        made_helper.close()


def same(a, b):
    for mine, theirs in zip(tree_leaves(a), tree_leaves(b), strict=True):
        assert type(mine) is type(theirs)
        assert np.asarray(mine).dtype == np.asarray(theirs).dtype
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_childs_results_are_the_callers_bits(made, dtype):
    calls = [example(6, seed, dtype) for seed in range(3)]
    worker = made(args=calls[0])
    for first, second in zip(calls, calls[1:]):
        results = helper.call_all(worker, step, [first, second])
        same(results, [step(*first), step(*second)])
    assert worker.calls == 2  # each last call went to the child


def where_computed(x):
    return x * 2, np.int64(os.getpid())


def test_the_last_call_is_made_in_the_child(made):
    worker = made(where_computed, (np.ones(3),))
    (first, here), (second, there) = helper.call_all(
        worker, where_computed, [(np.ones(3),), (np.full(3, 2.0),)])
    assert here == PARENT and there == worker.pid != PARENT
    np.testing.assert_array_equal(second, np.full(3, 4.0))


def test_smaller_arguments_fit_and_larger_or_other_ones_are_computed_here(made):
    worker = made()
    small = example(rows=2, seed=1)
    same(helper.call_all(worker, step, [small, small]), [step(*small)] * 2)
    assert worker.calls == 1
    large = example(rows=60, seed=2)
    same(helper.call_all(worker, step, [large, large]), [step(*large)] * 2)
    other = ({"w": large[0]["w"]}, large[1], 0.5)  # another structure
    assert worker.submit(other) is False and worker.calls == 1


def slow_in_the_child(x):
    if os.getpid() != PARENT:
        time.sleep(0.5)
    return x + 1


def test_a_late_child_is_not_waited_for_and_its_answer_is_dropped(made, monkeypatch):
    worker = made(slow_in_the_child, (np.zeros(2),))
    monkeypatch.setattr(helper, "LEAST_WAIT", 0.05)
    started = time.perf_counter()
    results = helper.call_all(worker, slow_in_the_child, [(np.zeros(2),), (np.ones(2),)])
    assert time.perf_counter() - started < 0.4
    np.testing.assert_array_equal(results[1], [2.0, 2.0])
    assert not worker.ready()  # paused after a late answer
    worker.pause["until"] = 0.0
    assert not worker.ready() and not worker.submit((np.ones(2),))  # still busy with it
    time.sleep(0.6)  # the late answer arrives, for a call that was made here instead
    assert worker.ready()  # and is dropped
    assert worker.submit((np.full(2, 5.0),))
    answered, value = worker.result(2.0)
    assert answered
    np.testing.assert_array_equal(value, [6.0, 6.0])


def hanging_in_the_child(x):
    if os.getpid() != PARENT:
        time.sleep(3600)
    return x * 3


def test_a_hanging_child_is_sent_one_call_and_killed_at_close(made, monkeypatch):
    worker = made(hanging_in_the_child, (np.zeros(2),))
    monkeypatch.setattr(helper, "LEAST_WAIT", 0.01)
    monkeypatch.setattr(helper, "EXIT_SECONDS", 0.2)
    started = time.perf_counter()
    for value in range(200):  # far more calls than a pipe's buffer holds messages
        worker.pause["until"] = 0.0
        results = helper.call_all(worker, hanging_in_the_child,
                                  [(np.zeros(2),), (np.full(2, value),)])
        np.testing.assert_array_equal(results[1], [3 * value] * 2)
    assert worker.calls == 1 and time.perf_counter() - started < 5
    pid = worker.pid
    worker.close()
    assert not _running(pid)


def failing_in_the_child(x):
    if os.getpid() != PARENT:
        raise RuntimeError("only in the child")
    return x - 1


def failing_everywhere(x):
    raise ValueError(f"bad input {x[0]}")


def test_a_call_that_fails_in_the_child_is_made_here(made):
    worker = made(failing_in_the_child, (np.zeros(2),))
    results = helper.call_all(worker, failing_in_the_child, [(np.zeros(2),), (np.ones(2),)])
    np.testing.assert_array_equal(results[1], [0.0, 0.0])
    worker = made(failing_in_the_child, (np.zeros(2),))
    with pytest.raises(ValueError, match="bad input 7"):
        helper.call_all(worker, lambda x: x if x[0] == 0 else failing_everywhere(x),
                        [(np.zeros(2),), (np.full(2, 7.0),)])


def test_a_killed_child_costs_nothing(made):
    worker = made()
    os.kill(worker.pid, signal.SIGKILL)
    calls = [example(seed=3), example(seed=4)]
    same(helper.call_all(worker, step, calls), [step(*call) for call in calls])
    same(helper.call_all(worker, step, calls), [step(*call) for call in calls])
    assert not worker.alive


def test_the_child_ignores_ctrl_c(made):
    worker = made()
    os.kill(worker.pid, signal.SIGINT)
    time.sleep(0.1)
    calls = [example(seed=5), example(seed=6)]
    same(helper.call_all(worker, step, calls), [step(*call) for call in calls])
    assert worker.alive and worker.calls == 1


def test_close_ends_and_reaps_the_child(made):
    worker = made()
    pid = worker.pid
    worker.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already: no such child
    worker.close()  # twice is harmless


def test_the_child_ends_when_its_caller_does():
    program = ("import os, numpy as np; from autodiff import helper; "
               "h = helper.HelperProcess(lambda x: x, (np.ones(2),), np.ones(2)); "
               "print(h.pid, flush=True); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=60)
    pid = int(done.stdout)
    deadline = time.time() + 10
    while time.time() < deadline and _running(pid):
        time.sleep(0.05)
    assert not _running(pid)


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def test_the_callers_products_are_computed_alone_meanwhile(made, monkeypatch):
    seen = []
    monkeypatch.setattr(parallel, "_threads", 2)

    def spy(x):
        seen.append(parallel._running["tasks"])
        return x

    worker = made(spy, (np.ones(2),))
    seen.clear()
    helper.call_all(worker, spy, [(np.ones(2),), (np.ones(2),)])
    assert seen == [1] and parallel._running["tasks"] == 0
