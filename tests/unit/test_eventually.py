"""``eventually``: waits for a truthy value with a deadline and fails saying what it awaited."""
from __future__ import annotations

import itertools
import time

import pytest

from tests.harness.eventually import eventually, eventually_async


def test_returns_the_first_truthy_value():
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "done", 5, 0.001) == "done"


def test_times_out_naming_what_it_awaited_and_the_last_value():
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for the moon \(last value: 0\)"):
        eventually(lambda: 0, 0.05, 0.01, message="the moon")
    assert time.monotonic() - t0 < 1


def test_a_zero_timeout_checks_once():
    calls = []
    with pytest.raises(AssertionError, match="waiting for .*<lambda>"):
        eventually(lambda: calls.append(1), 0)
    assert calls == [1]


def test_a_failing_predicate_ends_the_wait_at_once():
    def broken() -> bool:
        raise AssertionError("the process died")

    t0 = time.monotonic()
    with pytest.raises(AssertionError, match="the process died"):
        eventually(broken, 10)
    assert time.monotonic() - t0 < 1


async def test_async_takes_sync_and_async_predicates_and_messages():
    counter = itertools.count()

    async def ready() -> int:
        return next(counter) >= 2

    assert await eventually_async(ready, 5, 0.001) is True
    assert await eventually_async(lambda: [1], 5) == [1]

    async def why() -> str:
        return "the queue to drain (3 left)"

    with pytest.raises(AssertionError, match=r"waiting for the queue to drain \(3 left\)"):
        await eventually_async(lambda: None, 0.02, 0.005, message=why)
