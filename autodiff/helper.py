"""A helper process: calls of one function made in a forked copy of this process, so that
two calls run at once without sharing Python's interpreter lock.

Why not threads? A call of the engine is a long run of NumPy operations, each a few
microseconds of Python around a C loop. Two threads making such calls take turns with the
lock hundreds of times per call, and every turn waits for the other thread's Python to
let go. Measured on 2 cores, a shard of the default CNN (64 MNIST images, forward and
backward) took 7.7 to 8.4 ms alone; two at once took 9.2 ms in two processes (which
still share the memory bus and caches) and 10.0 ms on two threads of one process.

How: `HelperProcess(fun, args, result)` forks once; the child waits for calls and makes
them. The arrays of each call's arguments and of its result travel through two regions
of shared memory (sized for the example `args` and `result`, and reused by every call);
a pipe each way carries a short JSON message: the call's number and where each array is.
The child has one call at a time: this process writes arguments only while the child
waits. The child computes with the same code on the same bits, so its results are bit
for bit the ones this process would get. The arguments and result must have the structure of the
examples (pytrees whose leaves are arrays, NumPy scalars or Python numbers).

`call_all(helper, fun, calls)` makes the calls, the last one in the helper. When the
helper has not answered about one call's time after this process is done with its own,
this process makes that call itself, and does not ask the helper again until it has
answered and a while has passed (10 ms, doubling with every late answer, up to a
second; the calls go to autodiff.parallel's threads meanwhile), as autodiff.parallel
does with its threads: on a machine whose other cores are busy, the work never waits for
the scheduler. A call that
fails in the helper is made again here, where its error is raised.

The child ignores Ctrl-C (this process handles it) and exits when its pipe closes: on
`close()`, or when this process ends in any way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import mmap
import os
import select
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff import parallel
from autodiff.tree import tree_flatten, tree_unflatten

ALIGN = 64  # every array in a region starts on a cache line
# The least time to wait for the child's answer: a message's round trip between two
# processes takes some 0.1 ms, however short the call.
LEAST_WAIT = 0.001
_LENGTH = struct.Struct("<I")  # the length of each JSON message, before it
# Seconds `close` waits for a child to exit before it kills it.
EXIT_SECONDS = 5.0
# The pipe ends this process holds for its helpers. A child forked later must close them:
# an end it kept open would keep another child's pipe from ever closing.
_PIPE_ENDS: set[int] = set()


def available() -> bool:
    """Whether helper processes can be made here (fork, as on Linux)."""
    return hasattr(os, "fork") and sys.platform.startswith("linux")


def _region_size(leaves: list) -> int:
    return sum(_aligned(np.asarray(leaf).nbytes) for leaf in leaves) + ALIGN


def _aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def _write(region: mmap.mmap, leaves: list) -> list | None:
    """Store `leaves` in `region`: their descriptions, or None if one does not fit or is
    not an array, a NumPy scalar or a Python number."""
    described, offset = [], 0
    for leaf in leaves:
        if type(leaf) in (int, float, bool):
            described.append({"value": leaf})
            continue
        if not isinstance(leaf, (np.ndarray, np.generic)) or leaf.dtype.hasobject:
            return None
        array = np.asarray(leaf)
        if offset + array.nbytes > len(region):
            return None
        view = np.frombuffer(region, array.dtype, array.size, offset).reshape(array.shape)
        view[...] = array
        described.append({"offset": offset, "shape": list(array.shape),
                          "dtype": array.dtype.str, "scalar": isinstance(leaf, np.generic)})
        offset += _aligned(array.nbytes)
    return described


def _read(region: mmap.mmap, described: list) -> list:
    """Copies of the leaves `_write` stored (the region is reused by the next call)."""
    leaves = []
    for entry in described:
        if "value" in entry:
            leaves.append(entry["value"])
            continue
        dtype, shape = np.dtype(entry["dtype"]), tuple(entry["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        array = np.frombuffer(region, dtype, count, entry["offset"]).reshape(shape).copy()
        leaves.append(array[()] if entry["scalar"] else array)
    return leaves


def _send(fd: int, message: dict) -> None:
    data = json.dumps(message).encode()
    data = _LENGTH.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def _receive(fd: int) -> dict | None:
    """The next message, or None when the other end has closed its pipe."""
    head = _read_exactly(fd, _LENGTH.size)
    if head is None:
        return None
    body = _read_exactly(fd, _LENGTH.unpack(head)[0])
    return None if body is None else json.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _waiting(fd: int, seconds: float = 0.0) -> bool:
    """Whether `fd` has something to read (or has closed) within `seconds`. poll, not
    select: select cannot watch descriptors numbered 1024 and up."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0, math.ceil(seconds * 1000))))


class HelperProcess:
    """A forked child that makes calls `fun(*args)` (see the module notes)."""

    def __init__(self, fun: Callable[..., Any], args: tuple, result: Any) -> None:
        if not available():
            raise OSError("helper processes need fork (Linux)")
        arg_leaves, self.args_def = tree_flatten(tuple(args))
        result_leaves, self.result_def = tree_flatten(result)
        self.inputs = mmap.mmap(-1, _region_size(arg_leaves))
        self.outputs = mmap.mmap(-1, _region_size(result_leaves))
        self.calls = 0  # the number of calls sent
        self.outstanding = False  # whether the child has a call it has not answered
        self.pause = {"until": 0.0, "seconds": 0.0}
        self.alive = True
        calls_read, self._calls_fd = os.pipe()
        self._results_fd, results_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: it never returns into the caller's code
            status = 1
            try:
                for fd in _PIPE_ENDS | {self._calls_fd, self._results_fd}:
                    os.close(fd)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                _serve(fun, self, calls_read, results_write)
                status = 0
            finally:
                os._exit(status)
        os.close(calls_read)
        os.close(results_write)
        _PIPE_ENDS.update((self._calls_fd, self._results_fd))

    def ready(self) -> bool:
        """Whether a call may be sent now: the child lives, is not paused, and has answered
        every call sent to it. One call at a time: the caller never writes into the
        shared memory while the child may read it, and a child that hangs never fills
        its pipe."""
        if not self.alive or time.perf_counter() < self.pause["until"]:
            return False
        while self.outstanding and self.alive and _waiting(self._results_fd):
            self._answer()  # a late answer, to a call made here instead: dropped
        return self.alive and not self.outstanding

    def submit(self, args: tuple) -> bool:
        """Send the call fun(*args); False if the child is not ready for it (see `ready`)
        or the arguments do not fit the examples."""
        if self.outstanding or not self.alive:
            return False
        leaves, treedef = tree_flatten(tuple(args))
        described = _write(self.inputs, leaves) if treedef == self.args_def else None
        if described is None:
            return False
        self.calls += 1
        try:
            _send(self._calls_fd, {"call": self.calls, "leaves": described})
        except OSError:  # the child has gone
            self.alive = False
            return False
        self.outstanding = True
        return True

    def result(self, seconds: float) -> tuple[bool, Any]:
        """(True, result) of the call sent, or (False, None) if the child has not answered
        within `seconds`, failed, or has gone."""
        if not _waiting(self._results_fd, seconds):
            return False, None
        message = self._answer()
        if message is None or "leaves" not in message:
            return False, None
        return True, tree_unflatten(self.result_def, _read(self.outputs, message["leaves"]))

    def _answer(self) -> dict | None:
        """The child's answer to the call sent (it has one call at a time), or None if it
        has gone."""
        message = _receive(self._results_fd)
        self.outstanding = False
        if message is None:
            self.alive = False
        return message

    def answered(self, in_time: bool) -> None:
        """No calls for a while after a late answer, twice as long each time in a row."""
        if in_time:
            self.pause["seconds"] = 0.0
            return
        seconds = min(max(2 * self.pause["seconds"], parallel.FIRST_PAUSE),
                      parallel.LONGEST_PAUSE)
        self.pause.update(seconds=seconds, until=time.perf_counter() + seconds)

    def close(self) -> None:
        """End the child (it exits when its pipe closes; if it has not within
        EXIT_SECONDS, it is killed) and wait for it."""
        if self.pid <= 0:
            return
        for fd in (self._calls_fd, self._results_fd):
            _PIPE_ENDS.discard(fd)
            os.close(fd)
        deadline = time.perf_counter() + EXIT_SECONDS
        with contextlib.suppress(ChildProcessError):  # closed in a fork of this process
            while os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                if time.perf_counter() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(0.001)
        self.pid, self.alive = 0, False
        self.inputs.close()
        self.outputs.close()


def _serve(fun: Callable[..., Any], helper: HelperProcess, calls_fd: int,
           results_fd: int) -> None:
    """The child's loop: make each call and answer it, until the pipe closes."""
    while True:
        message = _receive(calls_fd)
        if message is None:
            return
        answer: dict = {"call": message["call"]}
        described = _call(fun, helper, message["leaves"])
        if described is not None:  # without leaves, the caller makes the call again
            answer["leaves"] = described
        try:
            _send(results_fd, answer)
        except OSError:  # the caller has gone
            return


def _call(fun: Callable[..., Any], helper: HelperProcess, described: list) -> list | None:
    """Make one call in the child: where its result is in the shared memory, or None if
    the call failed or its result does not fit (the caller then makes it again itself,
    and meets the error, if there is one, on its own thread)."""
    try:
        args = tree_unflatten(helper.args_def, _read(helper.inputs, described))
        leaves, treedef = tree_flatten(fun(*args))
        return _write(helper.outputs, leaves) if treedef == helper.result_def else None
    except Exception:  # noqa: BLE001
        return None


def call_all(helper: HelperProcess | None, fun: Callable[..., Any],
             calls: Sequence[tuple]) -> list:
    """`[fun(*args) for args in calls]`, the last call made by `helper` when it is ready
    and the arguments fit (see the module notes). This thread makes the others alone:
    the helper keeps the other core busy. Without the helper, the calls are shared out
    with autodiff.parallel.run."""
    calls = list(calls)
    sent = helper is not None and len(calls) > 1 and helper.ready() and \
        helper.submit(calls[-1])
    if not sent:
        return parallel.run([functools.partial(fun, *args) for args in calls])
    started = time.perf_counter()
    with parallel.alone():
        mine = [fun(*args) for args in calls[:-1]]
    per_call = (time.perf_counter() - started) / len(mine)
    answered, theirs = helper.result(max(per_call, LEAST_WAIT))
    helper.answered(answered)
    return mine + [theirs if answered else fun(*calls[-1])]
