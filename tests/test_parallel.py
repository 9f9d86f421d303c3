"""Large products on several threads: the same bits whatever the thread count, even when a
worker falls behind, and exactly np.matmul's results up to rounding."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff.numpy as anp
from autodiff import grad, parallel


@pytest.fixture
def threads(monkeypatch):
    """Set the thread count for one test, with products of these tests' sizes (a thousand
    multiply-adds and up) shared out; back to one thread afterwards."""
    monkeypatch.setattr(parallel, "MIN_WORK", 1000)
    yield parallel.set_threads
    parallel.set_threads(1)


def _product(rng, m, k, n, dtype):
    return (rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))


# Shapes whose largest dimension is each of rows, columns and the summed one.
SHAPES = [(300, 120, 90), (40, 150, 700), (30, 3000, 40), (129, 784, 256)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_for_any_thread_count(threads, m, k, n, dtype):
    a, b = _product(np.random.default_rng(m), m, k, n, dtype)
    results = []
    for count in (2, 3, 4):
        threads(count)
        results.append(parallel.matmul(a, b))
    for result in results[1:]:
        assert result.dtype == dtype
        np.testing.assert_array_equal(result, results[0])
    np.testing.assert_allclose(results[0], a @ b, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-3 if dtype == np.float32 else 1e-10)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 300), k=st.integers(1, 300), n=st.integers(1, 300))
def test_any_shape_matches_numpy(m, k, n):
    parallel.set_threads(2)
    parallel.MIN_WORK, min_work = 1000, parallel.MIN_WORK
    try:
        a, b = _product(np.random.default_rng(m * k + n), m, k, n, np.float64)
        np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-10, atol=1e-10)
    finally:
        parallel.set_threads(1)
        parallel.MIN_WORK = min_work


def test_a_late_worker_is_not_waited_for_and_never_writes_into_the_result(threads, monkeypatch):
    """A worker that has lost its core: the caller computes the worker's block itself, in
    about one block's time, and what it returned stays as it was after the worker ends."""
    a, b = _product(np.random.default_rng(0), 400, 300, 200, np.float64)
    threads(2)
    expected = parallel.matmul(a, b)
    compute = parallel._Job.compute
    released = threading.Event()

    def slow_worker(job, i, out):
        if threading.current_thread() is not threading.main_thread():
            released.wait(5)  # the worker is "descheduled" until the caller has returned
            if out is not None:
                out[...] = -1.0  # what a late write into the returned array would do
        compute(job, i, out)

    monkeypatch.setattr(parallel._Job, "compute", slow_worker)
    started = time.perf_counter()
    result = parallel.matmul(a, b)
    elapsed = time.perf_counter() - started
    snapshot = result.copy()
    released.set()
    time.sleep(0.2)  # let the worker finish its block
    assert elapsed < 4  # not the 5 s the worker was held
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(result, snapshot)


def test_small_integer_and_batched_products_are_numpys(threads):
    threads(2)
    rng = np.random.default_rng(1)
    small = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))  # under MIN_WORK
    ints = rng.integers(0, 9, (500, 500)), rng.integers(0, 9, (500, 500))
    batched = rng.standard_normal((2, 300, 300)), rng.standard_normal((2, 300, 300))
    for a, b in (small, ints, batched):
        np.testing.assert_array_equal(parallel.matmul(a, b), np.matmul(a, b))
    out = np.empty((300, 300))
    assert parallel.matmul(batched[0][0], batched[1][0], out=out) is out


def test_gradients_through_the_threads(threads):
    """anp.matmul computes with parallel.matmul: values and gradients of a large product."""
    threads(2)
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((200, 150)), rng.standard_normal((150, 100))
    ga, gb = grad(lambda a, b: anp.sum(anp.tanh(a @ b)), argnums=(0, 1))(a, b)
    g = 1 - np.tanh(a @ b) ** 2
    np.testing.assert_allclose(ga, g @ b.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, a.T @ g, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_thread_count_is_checked(bad):
    with pytest.raises(ValueError, match="positive integer"):
        parallel.set_threads(bad)


def test_blocks_cover_the_range_once():
    for size in (1, 2, 3, 7, 128, 1000):
        cuts = parallel.blocks(size, 4)
        covered = np.concatenate([np.arange(size)[cut] for cut in cuts])
        np.testing.assert_array_equal(covered, np.arange(size))
        assert len(cuts) == min(size, 4)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_a_forked_child_computes_alone(threads):
    """The child of a fork has none of the workers: it must not wait for them, and it
    computes the same blocks, so the same bits."""
    threads(2)
    a, b = _product(np.random.default_rng(3), 300, 200, 100, np.float64)
    expected = parallel.matmul(a, b)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it computed the same bits alone
        ok = not parallel._pool and np.array_equal(parallel.matmul(a, b), expected)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    assert answer == b"1"


# ------------------------------------------------------------------------ tasks


@pytest.fixture
def task_threads(threads, monkeypatch):
    """`threads`, with no pause left over from an earlier late worker."""
    monkeypatch.setattr(parallel, "_pause", {"until": 0.0, "seconds": 0.0})
    return threads


def _slow_square(i, threads_seen):
    threads_seen.add(threading.get_ident())
    time.sleep(0.002)
    return i * i


@pytest.mark.parametrize("count", [1, 2, 3])
def test_run_returns_every_result_in_order(task_threads, count):
    task_threads(count)
    seen: set = set()
    results = parallel.run([lambda i=i: _slow_square(i, seen) for i in range(60)])
    assert results == [i * i for i in range(60)]
    assert len(seen) == count  # every thread took some of the calls
    assert parallel.run([]) == [] and parallel.run([lambda: 7]) == [7]


def test_workers_see_the_callers_context(task_threads):
    """NumPy's error settings live in the caller's context: a worker's call sees them."""
    task_threads(2)

    def settings():
        time.sleep(0.002)
        return threading.current_thread().name, np.geterr()["over"]

    with np.errstate(over="ignore"):
        results = parallel.run([settings] * 20)
    assert {over for _, over in results} == {"ignore"}
    assert {name for name, _ in results} - {threading.current_thread().name}  # workers ran


@pytest.mark.parametrize("failing", [0, 5])
def test_an_error_in_a_call_is_raised_to_the_caller(task_threads, failing):
    task_threads(2)

    def call(i):
        time.sleep(0.002)
        if i == failing:
            raise KeyError(f"call {i}")
        return i

    with pytest.raises(KeyError, match=f"call {failing}"):
        parallel.run([lambda i=i: call(i) for i in range(8)])
    assert parallel.run([lambda i=i: i for i in range(8)]) == list(range(8))


def test_a_late_worker_is_not_waited_for(task_threads):
    """A worker that has lost its core: the caller makes its call again, in about one
    call's time, and returns its own result."""
    task_threads(2)
    released = threading.Event()

    def call(i):
        if threading.current_thread() is not threading.main_thread():
            released.wait(5)  # the worker is "descheduled" until the caller has returned
            return "late"
        time.sleep(0.01)
        return i

    started = time.perf_counter()
    results = parallel.run([lambda i=i: call(i) for i in range(4)])
    elapsed = time.perf_counter() - started
    released.set()
    assert results == [0, 1, 2, 3]
    assert elapsed < 4  # not the 5 s the worker was held


def test_products_inside_calls_are_computed_alone_with_the_same_bits(task_threads):
    task_threads(2)
    a, b = _product(np.random.default_rng(4), 400, 300, 200, np.float32)
    expected = parallel.matmul(a, b)
    for result in parallel.run([lambda: parallel.matmul(a, b)] * 4):
        np.testing.assert_array_equal(result, expected)
    assert not parallel._jobs  # no product asked the busy workers for help


def test_a_run_inside_a_call_makes_its_calls_in_turn(task_threads):
    task_threads(2)
    inner = parallel.run([lambda: parallel.run([lambda i=i: (i, threading.current_thread().name)
                                                for i in range(3)])] * 2)
    for calls in inner:
        assert [i for i, _ in calls] == [0, 1, 2]
        assert len({name for _, name in calls}) == 1  # all on the thread of the outer call
