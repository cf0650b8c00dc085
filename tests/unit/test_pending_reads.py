"""ReadIndex batching: one round in flight; reads that arrive meanwhile share the next one."""
from __future__ import annotations

import asyncio

from metadata.raft import ReadState
from metadata.replication.reads import PendingReads
from objstore.errors import NotLeader


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_reads_arriving_during_a_round_wait_for_the_next_one():
    loop = asyncio.get_running_loop()
    clock = Clock()
    reads = PendingReads("m1", stale_after=0.1, clock=clock)
    asked: list[bytes] = []
    first = [loop.create_future() for _ in range(2)]
    for f in first:
        reads.add(f)
    reads.start_round(asked.append, NotLeader)
    assert len(asked) == 1
    later = [loop.create_future() for _ in range(3)]
    for f in later:
        reads.add(f)
    reads.start_round(asked.append, NotLeader)
    assert len(asked) == 1, "a second round must not start while the first is in flight"
    reads.confirmed([ReadState(asked[0], 10)], applied=10)
    assert all(f.done() for f in first) and not any(f.done() for f in later)
    reads.start_round(asked.append, NotLeader)
    assert len(asked) == 2
    reads.confirmed([ReadState(asked[1], 12)], applied=11)
    assert not any(f.done() for f in later), "served only once the read index is applied"
    reads.serve(12)
    assert all(f.done() for f in later)


async def test_a_round_in_flight_too_long_does_not_block_reads():
    loop = asyncio.get_running_loop()
    clock = Clock()
    reads = PendingReads("m1", stale_after=0.1, clock=clock)
    asked: list[bytes] = []
    reads.add(loop.create_future())
    reads.start_round(asked.append, NotLeader)
    late = loop.create_future()
    reads.add(late)
    clock.now = 0.2  # the first round's messages may have been lost
    reads.start_round(asked.append, NotLeader)
    assert len(asked) == 2
    reads.confirmed([ReadState(asked[1], 5)], applied=5)
    assert late.done()
