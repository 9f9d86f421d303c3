"""Worker processes for CPU-heavy requests, fed over pipes by an asyncio event loop.

Reading an image is a few milliseconds of NumPy work in many small steps that hold the
GIL, so the threads of one process answer such requests one after another. `Workers`
forks processes that each run `work(bytes) -> (status, bytes)` on the requests the event
loop hands them, one request per worker at a time, so that a server uses every core
while its event loop only parses requests and writes answers.

- Forked (Linux only), when created: each worker starts with what `work` needs in memory
  (a model) without loading it again. Create them before the server has threads or
  sockets, which a fork would copy.
- No thread in the server: the event loop waits on the pipes itself; requests wait for
  an idle worker in arrival order.
- Nothing is pickled: requests and answers cross as bytes.
- `work` raising fails that request with RuntimeError (the worker prints the traceback
  and reads on). A worker that dies (killed, out of memory) fails its request with
  ConnectionError and is not replaced; once none is left, `alive` is 0 and `run` raises
  ConnectionError at once.
- Workers ignore Ctrl-C, which reaches the whole process group, and are stopped by
  `close()`; they are killed with the server if it is killed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection

Work = Callable[[bytes], tuple[int, bytes]]

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>: the signal a process gets when its parent dies
DONE, FAILED = b"+", b"-"  # the first byte of a worker's reply


class Workers:
    """`count` forked processes running `work` on the requests given to `run`."""

    def __init__(self, work: Work, count: int) -> None:
        if count < 1:
            raise ValueError(f"Workers needs at least one process, got {count}")
        context = multiprocessing.get_context("fork")
        self._connections: list[Connection] = []
        self._processes = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            self._connections.append(ours)
            process = context.Process(target=_serve, args=(theirs, work, self._connections),
                                      daemon=True, name="digits-worker")
            process.start()
            theirs.close()
            self._processes.append(process)
        self._idle: asyncio.Queue[Connection | None] = asyncio.Queue()
        for connection in self._connections:
            self._idle.put_nowait(connection)
        self.alive = count

    async def run(self, data: bytes) -> tuple[int, bytes]:
        """`work(data)` in the next idle worker."""
        connection = await self._idle.get()
        if connection is None:  # no worker is left: let the next caller see it too
            self._idle.put_nowait(None)
            raise ConnectionError("no worker process is left")
        # Shielded: a cancelled request still takes the worker's answer off the pipe
        # before the worker reads the next one.
        reply = await asyncio.shield(self._exchange(connection, data))
        if reply[:1] == FAILED:
            raise RuntimeError(f"a worker process failed: {reply[1:].decode()}")
        return int(reply[1:4]), reply[4:]

    async def _exchange(self, connection: Connection, data: bytes) -> bytes:
        try:
            connection.send_bytes(data)
            await _readable(connection)
            reply = connection.recv_bytes()
        except (OSError, EOFError):
            connection.close()
            self.alive -= 1
            print(f"error: a worker process died; {self.alive} left", file=sys.stderr,
                  flush=True)
            if self.alive == 0:
                self._idle.put_nowait(None)
            raise ConnectionError("a worker process died while reading a request") from None
        self._idle.put_nowait(connection)
        return reply

    def close(self) -> None:
        """Stop the workers: each exits once it has finished its request (or is killed
        after 5 s)."""
        for connection in self._connections:
            connection.close()
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


async def _readable(connection: Connection) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(connection.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(connection.fileno())


def _serve(connection: Connection, work: Work, servers: list[Connection]) -> None:
    """A worker's life: read a request, answer it, until the server closes the pipe.
    `servers`: the server's ends of the pipes so far, which the fork copied; closed here,
    or closing them in the server would not end the pipes."""
    for end in servers:
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    while True:
        try:
            data = connection.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            status, body = work(data)
            reply = DONE + b"%03d" % status + body
        except Exception as error:  # a bug: its traceback on stderr, a failure to the server
            traceback.print_exc()
            sys.stderr.flush()
            reply = FAILED + repr(error).encode("utf-8", "replace")
        connection.send_bytes(reply)
