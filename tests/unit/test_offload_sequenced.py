"""One body's jobs on the gateway's worker pool (``gateway.datapath.offload.Sequenced``):
in order and never two at once, up to ``depth`` outstanding before the loop waits, an error
raised where the loop waits and nothing queued behind it run."""
from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import pytest

from gateway.datapath import offload
from gateway.datapath.offload import Sequenced


@pytest.fixture(autouse=True)
def _pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offload, "WORKERS", 2)


async def test_jobs_run_in_order_one_at_a_time_and_a_digest_sees_every_byte():
    jobs = Sequenced(4)
    md5 = hashlib.md5()
    running, order, overlaps = [0], [], []
    lock = threading.Lock()
    pieces = [os.urandom(300_000) for _ in range(40)]

    def job(i: int, piece: bytes) -> int:
        with lock:
            running[0] += 1
            overlaps.append(running[0])
        time.sleep(0.001 * (i % 3))
        md5.update(piece)
        order.append(i)
        with lock:
            running[0] -= 1
        return i

    for i, piece in enumerate(pieces):
        await jobs.submit(job, i, piece)
    assert await jobs.wait() == len(pieces) - 1
    assert order == list(range(len(pieces)))
    assert max(overlaps) == 1
    assert md5.hexdigest() == hashlib.md5(b"".join(pieces)).hexdigest()


async def test_the_loop_hands_over_up_to_depth_jobs_without_waiting_for_the_first():
    jobs = Sequenced(3)
    release = threading.Event()
    done: list[int] = []

    def job(i: int) -> None:
        release.wait(10)
        done.append(i)

    async with asyncio.timeout(2):  # depth 1 would wait here for the first job, which waits for the event
        for i in range(3):
            await jobs.submit(job, i)
    assert done == []
    fourth = asyncio.ensure_future(jobs.submit(job, 3))
    await asyncio.sleep(0.05)
    assert not fourth.done(), "a fourth job must wait for the first to finish"
    release.set()
    await fourth
    await jobs.wait()
    assert done == [0, 1, 2, 3]


async def test_an_error_is_raised_where_the_loop_waits_and_jobs_behind_it_do_not_run():
    jobs = Sequenced(4)
    ran: list[int] = []
    gate = threading.Event()

    def job(i: int) -> None:
        gate.wait(10)
        if i == 1:
            raise ValueError("broken")
        ran.append(i)

    for i in range(4):
        await jobs.submit(job, i)
    gate.set()
    with pytest.raises(ValueError, match="broken"):
        await jobs.wait()
    jobs.cancel()
    await asyncio.sleep(0.05)
    assert ran == [0]


async def test_cancel_drops_jobs_not_started():
    jobs = Sequenced(4)
    gate = threading.Event()
    ran: list[int] = []

    def job(i: int) -> None:
        gate.wait(10)
        ran.append(i)

    for i in range(3):
        await jobs.submit(job, i)
    await asyncio.sleep(0.02)  # the first is running, the others queued
    jobs.cancel()
    gate.set()
    await asyncio.sleep(0.1)
    assert ran == [0]
    assert await jobs.wait() is None
