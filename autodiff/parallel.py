"""Large matrix products on a few threads of our own, with results that never depend on
how many threads ran them or how busy the machine was.

Why not let the BLAS library use its own threads? Two reasons, both measured on a 2-core
machine with OpenBLAS:

- Its threads spin while they wait for each other. When another process keeps one core
  busy, a thread that has lost its core holds up every product until the scheduler gives
  it back: a training step of the default MLP took 10 to 30 times as long as with one
  thread.
- Its results depend on the thread count: a (128, 784) @ (784, 256) float32 product
  differs by up to 7e-5 between one thread and two, so a run resumed on a machine with
  another load (or another thread count) would not end with the same parameters.

Here the BLAS library runs single-threaded, and `matmul` splits a large product into
blocks, a partition fixed by the shapes alone. Each block is an ordinary single-threaded
product, so the result is the same, bit for bit, whichever thread computed which block.
Threads take blocks from a shared counter, so a thread that has lost its core takes
fewer; when the caller has done every block but one that a worker started and has not
finished, it computes that block itself (the same bits) into a fresh result instead of
waiting for the scheduler. A worker that was late is not asked again for a while (10 ms,
doubling with every late answer up to a second): on a busy machine the caller then works
alone, as fast as one thread can, and tries again later.

`run(tasks)` shares out coarser work the same way: independent calls (the gradients of
the slices of a training batch, say) claimed one at a time by the caller and the
workers. Each call is an ordinary sequential program, so its result does not depend on
which thread made it; a call a worker has not finished when the caller runs out of work
is made again by the caller. Products inside a task are computed on the task's own
thread, in the same blocks as always: the other threads are busy with other tasks.

`set_threads(n)` turns this on (the command-line tools call it with the number of
cores, after telling the BLAS library to use one thread); with the default of one thread
`matmul` is `np.matmul`, `run` calls the tasks in turn, and importing the engine starts
no thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

# Products with fewer multiply-adds than this run on the calling thread. Waking a worker
# and collecting its blocks costs about 0.2 ms on a 2-core machine: measured there, a
# (128, 784) @ (784, 256) product (25.7 million) took 0.53 ms alone and 0.46-0.56 ms on
# two threads, a (32, 144) @ (144, 25088) one (116 million) 5.0 ms alone and 3.3 ms on two.
MIN_WORK = 50_000_000
# Every large product is cut into this many blocks whatever the thread count, so that the
# partition, and with it every bit of the result, depends on the shapes alone.
BLOCKS = 4
FIRST_PAUSE, LONGEST_PAUSE = 0.01, 1.0  # seconds without workers after a late one

_pool: list[threading.Thread] = []
_jobs: list = []  # the products the workers are asked to help with; None: stop
_wake = threading.Condition()
_threads = 1
_pause = {"until": 0.0, "seconds": 0.0}  # when the workers may be asked again
_running = {"tasks": 0}  # calls of `run` in progress: their products get no helpers
_T = TypeVar("_T")


def _forget_workers() -> None:
    # A forked child has only the thread that forked: it computes the same blocks, alone.
    global _wake
    _wake = threading.Condition()
    _pool.clear()
    _jobs.clear()
    _running["tasks"] = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def set_threads(n: int) -> None:
    """Compute large float products on `n` threads (the caller and n - 1 workers)."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the thread count must be a positive integer, got {n!r}")
    with _wake:
        _jobs.extend([None] * len(_pool))  # each worker takes one None and stops
        _wake.notify_all()
    for worker in _pool:
        worker.join()
    _pool.clear()
    _jobs.clear()
    _threads = n
    for _ in range(n - 1):
        worker = threading.Thread(target=_work, name="autodiff-worker", daemon=True)
        worker.start()
        _pool.append(worker)


def thread_count() -> int:
    """The number of threads `set_threads` asked for (1 until it is called)."""
    return _threads


@contextlib.contextmanager
def alone():
    """Within: products are computed on the calling thread only, as inside `run`, for
    work that keeps the other cores busy in some other way (autodiff.helper)."""
    with _wake:
        _running["tasks"] += 1
    try:
        yield
    finally:
        with _wake:
            _running["tasks"] -= 1


def blocks(size: int, count: int = BLOCKS) -> list[slice]:
    """`range(size)` cut into at most `count` contiguous slices of nearly equal length."""
    count = max(1, min(count, size))
    edges = [size * i // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(edges[:-1], edges[1:])]


class _Job:
    """One product a @ b cut along its largest dimension: rows of a (axis 0), columns of
    b (axis 1), or the summed dimension (axis 2: partial products, added up in order).
    Blocks are claimed from `claims`; `done[i]` is set once block i is written."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        m, k = a.shape
        n = b.shape[1]
        self.a, self.b = a, b
        self.axis = int(np.argmax((m, n, k)))
        self.slices = blocks((m, n, k)[self.axis])
        self.out = np.empty((m, n), dtype=a.dtype) if self.axis < 2 else None
        self.parts: list = [None] * len(self.slices)
        self.claims = itertools.count()  # next() is atomic: each block is claimed once
        self.done = [False] * len(self.slices)
        self.finished = threading.Condition()

    def compute(self, i: int, out: np.ndarray | None) -> None:
        """Block i, written into `out` (axes 0 and 1) or stored as a part (axis 2)."""
        cut = self.slices[i]
        if self.axis == 0:
            np.matmul(self.a[cut], self.b, out=out[cut])
        elif self.axis == 1:
            np.matmul(self.a, self.b[:, cut], out=out[:, cut])
        else:
            self.parts[i] = np.matmul(self.a[:, cut], self.b[cut])

    def run(self, out: np.ndarray | None, notify: bool) -> int:
        """Claim and compute blocks until none is left; the number computed."""
        count = 0
        for i in self.claims:
            if i >= len(self.slices):
                break
            self.compute(i, out)
            count += 1
            if notify:
                with self.finished:
                    self.done[i] = True
                    self.finished.notify_all()
            else:
                self.done[i] = True
        return count

    def help(self) -> None:
        """A worker's share. A block that fails here stays not done: the caller computes
        it itself, and meets the error, if there is one, on its own thread."""
        with contextlib.suppress(Exception):
            self.run(self.out, notify=True)


def _work() -> None:
    while True:
        with _wake:
            while not _jobs:
                _wake.wait()
            job = _jobs.pop()  # the newest: older ones are finished or nearly so
        if job is None:
            return
        job.help()


def _eligible(a: Any, b: Any, kwargs: dict) -> bool:
    return (_threads > 1 and not kwargs and type(a) is np.ndarray and type(b) is np.ndarray
            and a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype
            and a.dtype in (np.float32, np.float64) and a.shape[1] == b.shape[0]
            and a.shape[0] * a.shape[1] * b.shape[1] >= MIN_WORK)


def matmul(a: Any, b: Any, /, out: Any = None, **kwargs: Any) -> Any:
    """`np.matmul(a, b)`; large 2-D float products are computed in blocks on the threads
    `set_threads` started. With two threads or more, the bits depend on the shapes only,
    never on the thread count or the load; with one, this is `np.matmul`."""
    if _threads == 1 or out is not None or not _eligible(a, b, kwargs):
        return np.matmul(a, b, out=out, **kwargs)
    job = _Job(a, b)
    started = time.perf_counter()
    helped = bool(_pool) and not _running["tasks"] and started >= _pause["until"]
    if helped:
        with _wake:
            _jobs.extend([job] * (_threads - 1))
            _wake.notify(_threads - 1)
    mine = job.run(job.out, notify=False)
    per_block = (time.perf_counter() - started) / max(mine, 1)
    out = _collect(job, max(per_block, 1e-4)) if helped else job.out
    if helped:
        with _wake:
            _withdraw(job)
    if job.axis < 2:
        return out
    total = job.parts[0]
    for part in job.parts[1:]:  # always in block order: the same bits every time
        total += part
    return total


# NumPy's own signature, so that `autodiff.numpy.matmul` keeps its calling convention.
matmul.__signature__ = inspect.signature(np.matmul)


def _collect(job: _Job, seconds: float) -> np.ndarray | None:
    """Wait about one block's time for the workers; then compute every block still not
    done on this thread, into a copy of the result, so that a late worker never writes
    into what is returned."""
    with job.finished:
        job.finished.wait_for(lambda: all(job.done), timeout=seconds)
        late = [i for i, done in enumerate(job.done) if not done]
        _pause_after(bool(late))
        if not late:
            return job.out
        out = None if job.out is None else job.out.copy()
    # A late worker may still store its part (axis 2): the same bits as ours.
    for i in late:
        job.compute(i, out)
    return out


def _pause_after(late: bool) -> None:
    """No workers for a while after a late one, for twice as long each time in a row."""
    if not late:
        _pause["seconds"] = 0.0
        return
    seconds = min(max(2 * _pause["seconds"], FIRST_PAUSE), LONGEST_PAUSE)
    _pause.update(seconds=seconds, until=time.perf_counter() + seconds)


# ------------------------------------------------------------------------ tasks


class _Tasks:
    """Independent calls, claimed one at a time from `claims`. A worker makes its calls
    in a copy of the caller's context (NumPy's error settings live there); `done[i]` is
    set once results[i] is stored, `failed[i]` when a worker's call raised."""

    def __init__(self, tasks: Sequence[Callable[[], Any]]) -> None:
        self.tasks = list(tasks)
        self.context = contextvars.copy_context()
        self.results: list = [None] * len(self.tasks)
        self.done = [False] * len(self.tasks)
        self.failed = [False] * len(self.tasks)
        self.claims = itertools.count(1)  # the caller makes call 0 itself
        self.finished = threading.Condition()

    def help(self) -> None:
        """A worker's share: claim and make calls until none is left."""
        for i in self.claims:
            if i >= len(self.tasks):
                return
            try:
                result = self.context.copy().run(self.tasks[i])
            except BaseException:  # the caller makes this call again and meets the error
                with self.finished:
                    self.failed[i] = True
                    self.finished.notify_all()
                continue
            with self.finished:
                self.results[i], self.done[i] = result, True
                self.finished.notify_all()


def run(tasks: Sequence[Callable[[], _T]]) -> list[_T]:
    """`[task() for task in tasks]`, the calls shared out among the threads `set_threads`
    started. Each task must be a pure function of what it closes over: a call a worker
    is late with is made again on this thread, and its result is the one returned. An
    exception from a task is raised here. With one thread, or inside another call of
    `run` (whose tasks keep the threads busy), the calls are made in turn."""
    tasks = list(tasks)
    if len(tasks) < 2 or not _pool or _running["tasks"]:
        return [task() for task in tasks]
    job = _Tasks(tasks)
    started = time.perf_counter()
    helped = started >= _pause["until"]
    with _wake:
        _running["tasks"] += 1
        if helped:
            _jobs.extend([job] * len(_pool))
            _wake.notify(len(_pool))
    try:
        mine = {0: tasks[0]()}
        for i in job.claims:
            if i >= len(tasks):
                break
            mine[i] = tasks[i]()
        per_task = (time.perf_counter() - started) / len(mine)
        with job.finished:
            job.finished.wait_for(
                lambda: all(job.done[i] or job.failed[i] for i in range(len(tasks))
                            if i not in mine), timeout=max(per_task, 1e-4))
            theirs = {i: job.results[i] for i in range(len(tasks)) if job.done[i]}
            if helped:
                _pause_after(len(mine) + len(theirs) < len(tasks))
        # A late or failed call is made again here: the same result, or the error, here.
        return [mine[i] if i in mine else theirs[i] if i in theirs else tasks[i]()
                for i in range(len(tasks))]
    finally:
        with _wake:
            _running["tasks"] -= 1
            _withdraw(job)


def _withdraw(job: Any) -> None:
    """Take back the requests for help with `job` that no worker has picked up: the job
    is finished. The caller holds `_wake`."""
    _jobs[:] = [waiting for waiting in _jobs if waiting is not job]
