"""CommitThread: calls run one at a time in queue order off the loop, outcomes come back
to the loop, and shutting down runs what was queued first."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from objstore.commit_thread import CommitThread


async def test_runs_in_order_on_one_thread_off_the_loop() -> None:
    ct = CommitThread("t-commit")
    seen: list[tuple[int, str]] = []

    def step(i: int) -> int:
        time.sleep(0.001)
        seen.append((i, threading.current_thread().name))
        return i * 2

    try:
        results = await asyncio.gather(*(ct.run(step, i) for i in range(20)))
    finally:
        ct.shutdown()
    assert results == [i * 2 for i in range(20)]
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"t-commit"}


async def test_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    ct = CommitThread("t-commit")

    def boom() -> None:
        raise OSError(5, "disk")

    try:
        with pytest.raises(OSError, match="disk"):
            await ct.run(boom)
        assert await ct.run(lambda: 7) == 7
    finally:
        ct.shutdown()


async def test_run_in_executor_shares_the_order() -> None:
    ct = CommitThread("t-commit")
    order: list[str] = []
    gate = threading.Event()
    try:
        first = ct.run(lambda: (gate.wait(5), order.append("append")))
        second = asyncio.get_running_loop().run_in_executor(ct, order.append, "remove")
        gate.set()
        await asyncio.gather(first, second)
    finally:
        ct.shutdown()
    assert order == ["append", "remove"]


async def test_a_cancelled_caller_does_not_stop_the_call() -> None:
    ct = CommitThread("t-commit")
    gate = threading.Event()
    done = threading.Event()
    try:
        fut = ct.run(lambda: (gate.wait(5), done.set()))
        fut.cancel()
        gate.set()
        await ct.run(lambda: None)  # queued behind it: the cancelled call has run
        assert done.is_set()
    finally:
        ct.shutdown()


async def test_shutdown_runs_what_was_queued_then_refuses() -> None:
    ct = CommitThread("t-commit")
    ran: list[int] = []
    futs = [ct.run(lambda i=i: (time.sleep(0.002), ran.append(i))) for i in range(5)]
    ct.shutdown(wait=True)
    assert ran == list(range(5))
    await asyncio.gather(*futs)
    with pytest.raises(RuntimeError):
        ct.run(lambda: None)
    with pytest.raises(RuntimeError):
        ct.submit(lambda: None)
