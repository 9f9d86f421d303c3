"""digits.workers: forked processes fed over pipes by an event loop."""

import asyncio
import multiprocessing
import os
import signal
import sys
import time

import pytest

from digits.workers import Workers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="worker processes are forked on Linux only")


def echo(data: bytes) -> tuple[int, bytes]:
    """Status 201, the request and the worker's pid; b'fail' raises, b'slow' takes a while."""
    if data == b"fail":
        raise ValueError("asked to fail")
    if data == b"slow":
        time.sleep(0.5)
    return 201, data + b" " + str(os.getpid()).encode()


def answer(reply: tuple[int, bytes]) -> tuple[int, bytes, int]:
    status, body = reply
    data, pid = body.rsplit(b" ", 1)
    return status, data, int(pid)


def run(coroutine):
    async def bounded():
        return await asyncio.wait_for(coroutine, 30)  # a failure, not a hang

    return asyncio.run(bounded())


@pytest.fixture
def workers():
    pool = Workers(echo, 2)
    yield pool
    pool.close()


def test_answers_come_from_worker_processes_with_their_status(workers):
    async def main():
        return await asyncio.gather(*(workers.run(b"x%d" % i) for i in range(8)))

    replies = [answer(reply) for reply in run(main())]
    assert [(status, data) for status, data, _ in replies] == [(201, b"x%d" % i)
                                                               for i in range(8)]
    assert os.getpid() not in {pid for _, _, pid in replies}


def test_workers_answer_at_the_same_time():
    barrier = multiprocessing.get_context("fork").Barrier(2, timeout=20)

    def meet(data: bytes) -> tuple[int, bytes]:
        barrier.wait()  # breaks (and the request fails) unless both run at once
        return 200, str(os.getpid()).encode()

    pool = Workers(meet, 2)
    try:
        async def main():
            return await asyncio.gather(pool.run(b""), pool.run(b""))

        (s1, pid1), (s2, pid2) = run(main())
        assert s1 == s2 == 200 and pid1 != pid2
    finally:
        pool.close()


def test_a_failing_request_fails_alone(workers):
    async def main():
        with pytest.raises(RuntimeError, match="asked to fail"):
            await workers.run(b"fail")
        return [await workers.run(b"ok") for _ in range(4)]

    assert all(answer(reply)[:2] == (201, b"ok") for reply in run(main()))


def test_a_cancelled_request_does_not_leave_its_answer_behind():
    pool = Workers(echo, 1)
    try:
        async def main():
            slow = asyncio.ensure_future(pool.run(b"slow"))
            await asyncio.sleep(0.1)
            slow.cancel()
            return await pool.run(b"next")

        assert answer(run(main()))[1] == b"next"
    finally:
        pool.close()


def test_killed_workers_fail_their_requests_and_the_rest_go_on(workers, capfd):
    async def main():
        pids = {answer(reply)[2] for reply in await asyncio.gather(
            *(workers.run(b"x") for _ in range(8)))}
        assert len(pids) == 2
        first, second = sorted(pids)
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.2)
        outcomes = await asyncio.gather(*(workers.run(b"y") for _ in range(6)),
                                        return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, ConnectionError)]
        assert len(failed) <= 1 and workers.alive == 1
        assert {answer(o)[2] for o in outcomes if not isinstance(o, Exception)} == {second}
        os.kill(second, signal.SIGKILL)
        await asyncio.sleep(0.2)
        await asyncio.gather(*(workers.run(b"z") for _ in range(2)), return_exceptions=True)
        assert workers.alive == 0
        with pytest.raises(ConnectionError, match="no worker process is left"):
            await workers.run(b"z")

    run(main())
    assert "a worker process died; 0 left" in capfd.readouterr().err


def test_workers_ignore_ctrl_c_and_stop_on_close():
    pool = Workers(echo, 2)

    async def pids():
        return {answer(reply)[2] for reply in await asyncio.gather(
            *(pool.run(b"x") for _ in range(8)))}

    async def main():
        before = await pids()
        for pid in before:
            os.kill(pid, signal.SIGINT)
        await asyncio.sleep(0.2)
        assert await pids() == before
        return before

    try:
        before = run(main())
    finally:
        start = time.monotonic()
        pool.close()
    assert time.monotonic() - start < 4  # each saw its pipe end, none waited to be killed
    for pid in before:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_at_least_one_worker():
    with pytest.raises(ValueError, match="at least one"):
        Workers(echo, 0)
