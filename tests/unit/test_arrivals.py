"""gateway.datapath.arrivals.Arrivals: finished tasks handed out once each, in finishing
order; an empty answer only on timeout; added tasks watched; close stops watching."""
from __future__ import annotations

import asyncio

from gateway.datapath.arrivals import Arrivals


async def _after(seconds: float, value: str) -> str:
    await asyncio.sleep(seconds)
    return value


async def test_tasks_come_once_each_in_finishing_order():
    tasks = [asyncio.ensure_future(_after(d, v)) for d, v in ((0.06, "c"), (0.0, "a"), (0.03, "b"))]
    arrivals = Arrivals(tasks)
    seen: list[str] = []
    while len(seen) < 3:
        seen += [t.result() for t in await arrivals.next()]
    assert seen == ["a", "b", "c"]
    arrivals.close()


async def test_a_timeout_gives_an_empty_list_and_later_arrivals_still_come():
    slow = asyncio.ensure_future(_after(0.2, "slow"))
    arrivals = Arrivals([slow])
    assert await arrivals.next(timeout=0.01) == []
    assert [t.result() for t in await arrivals.next(timeout=5)] == ["slow"]
    arrivals.close()


async def test_added_tasks_are_watched_and_failures_are_handed_out_too():
    failing = asyncio.ensure_future(_after(0.0, "x"))
    arrivals = Arrivals([failing])
    assert await arrivals.next() == [failing]

    async def boom() -> None:
        raise ValueError("no")

    added = asyncio.ensure_future(boom())
    arrivals.add(added)
    got = await arrivals.next()
    assert got == [added] and isinstance(added.exception(), ValueError)
    arrivals.close()


async def test_close_stops_watching():
    task = asyncio.ensure_future(_after(0.01, "late"))
    arrivals = Arrivals([task])
    arrivals.close()
    await task
    assert await arrivals.next(timeout=0.01) == []


async def test_a_task_done_when_the_timeout_fires_is_returned_not_lost():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    arrivals = Arrivals([done])

    def timer_then_finish() -> None:
        arrivals._wake()  # what the timeout's timer does
        done.set_result("x")  # the task ends in the same loop step; its callback runs after

    loop.call_soon(timer_then_finish)
    assert await arrivals.next() == [done]
    await asyncio.sleep(0)  # its callback has run now
    assert await arrivals.next(timeout=0.01) == []  # handed out once only
    arrivals.close()
