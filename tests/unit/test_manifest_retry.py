"""Background retries of failed manifest stores: run until done, bounded, cancelled on close."""
from __future__ import annotations

import asyncio

from gateway.datapath.manifest_retry import ManifestRetries


async def test_a_retry_runs_until_its_attempt_is_done_and_gives_up_after_its_delays():
    retries = ManifestRetries(delays=(0, 0, 0, 0))
    calls = {"a": 0, "b": 0}

    async def third_time() -> bool:
        calls["a"] += 1
        return calls["a"] == 3

    async def never() -> bool:
        calls["b"] += 1
        if calls["b"] == 1:
            raise RuntimeError("unexpected")  # logged; the retry goes on
        return False

    assert retries.start(third_time, "a") and retries.start(never, "b")
    for _ in range(20):
        await asyncio.sleep(0)
    assert calls == {"a": 3, "b": 4} and retries.pending == 0


async def test_retries_are_bounded_and_cancelled_on_close():
    retries = ManifestRetries(max_pending=2, delays=(3600,))
    ran = []

    async def attempt() -> bool:
        ran.append(1)
        return True

    assert retries.start(attempt, "1") and retries.start(attempt, "2")
    assert not retries.start(attempt, "3")
    assert (retries.pending, retries.dropped) == (2, 1)
    await retries.close()
    assert retries.pending == 0 and ran == []
