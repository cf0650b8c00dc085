"""Manifest writes coalesced per node (gateway.datapath.manifest_lanes), against a fake
storage client whose calls finish when the test says: the first write goes alone, those
that come meanwhile go in one batch after it, callers are answered only with their call,
failures reach every caller of the failed call, the waiting room is bounded."""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine

import pytest

from gateway.datapath.manifest_lanes import ManifestLanes
from objstore.errors import ServiceUnavailable
from objstore.manifest import CommitManifest


class FakeStorage:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[int]]] = []  # (kind, address, commit indexes)
        self.gates: list[asyncio.Future[None]] = []  # one per call, finished by the test
        self.epochs: list[int] = []  # the ring epoch of each call

    async def _call(self, kind: str, address: str, manifests: list[CommitManifest]) -> None:
        gate = asyncio.get_running_loop().create_future()
        self.calls.append((kind, address, [m.commit_index for m in manifests]))
        self.gates.append(gate)
        await gate

    async def put_manifest(self, address: str, manifest: CommitManifest, timeout: float = 2.0,
                           ring_epoch: int = 0) -> bool:
        self.epochs.append(ring_epoch)
        await self._call("one", address, [manifest])
        return True

    async def put_manifests(self, address: str, manifests: list[CommitManifest], timeout: float = 10.0,
                            ring_epoch: int = 0) -> int:
        self.epochs.append(ring_epoch)
        await self._call("batch", address, manifests)
        return len(manifests)


def manifest(i: int) -> CommitManifest:
    return CommitManifest("b", f"k{i}", i, None)


@pytest.fixture
def lanes():
    storage = FakeStorage()
    tasks: set[asyncio.Task] = set()

    def spawn(coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return ManifestLanes(storage, spawn, max_batch=3, max_waiting=5), storage  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_writes_arriving_during_a_call_go_together_after_it(lanes) -> None:
    lanes, storage = lanes
    first = asyncio.create_task(lanes.put("n1:1", manifest(1)))
    await settle()
    assert storage.calls == [("one", "n1:1", [1])]
    later = [asyncio.create_task(lanes.put("n1:1", manifest(i))) for i in (2, 3)]
    other = asyncio.create_task(lanes.put("n2:1", manifest(9)))  # another node: its own lane, at once
    await settle()
    assert storage.calls == [("one", "n1:1", [1]), ("one", "n2:1", [9])]
    assert not first.done() and not any(t.done() for t in later)
    storage.gates[0].set_result(None)
    await settle()
    assert first.done() and not any(t.done() for t in later)  # answered with their own call only
    assert storage.calls[2] == ("batch", "n1:1", [2, 3])
    storage.gates[2].set_result(None)
    storage.gates[1].set_result(None)
    await asyncio.gather(first, other, *later)
    assert lanes.calls == 3


async def test_a_failed_call_fails_every_manifest_it_carried_and_no_other(lanes) -> None:
    lanes, storage = lanes
    first = asyncio.create_task(lanes.put("n1:1", manifest(1)))
    await settle()
    carried = [asyncio.create_task(lanes.put("n1:1", manifest(i))) for i in (2, 3, 4, 5)]
    await settle()
    storage.gates[0].set_result(None)
    await settle()
    assert storage.calls[1] == ("batch", "n1:1", [2, 3, 4])  # at most max_batch per call
    storage.gates[1].set_exception(ServiceUnavailable("node down"))
    await settle()
    for task in carried[:3]:
        with pytest.raises(ServiceUnavailable):
            await task
    assert storage.calls[2] == ("one", "n1:1", [5])
    storage.gates[2].set_result(None)
    await carried[3]
    await first


async def test_the_waiting_room_is_bounded(lanes) -> None:
    lanes, storage = lanes
    first = asyncio.create_task(lanes.put("n1:1", manifest(1)))
    await settle()
    waiting = [asyncio.create_task(lanes.put("n1:1", manifest(i))) for i in range(2, 7)]  # max_waiting: 5
    await settle()
    extra = asyncio.create_task(lanes.put("n1:1", manifest(7)))
    await settle()
    assert storage.calls == [("one", "n1:1", [1]), ("one", "n1:1", [7])]  # sent alone, at once
    for gate in storage.gates:
        gate.set_result(None)
    await extra
    await settle()
    assert storage.calls[2] == ("batch", "n1:1", [2, 3, 4])
    storage.gates[2].set_result(None)
    await settle()
    assert storage.calls[3] == ("batch", "n1:1", [5, 6])
    storage.gates[3].set_result(None)
    await asyncio.gather(first, *waiting)


async def test_a_cancelled_caller_does_not_cancel_the_call_carrying_others(lanes) -> None:
    lanes, storage = lanes
    first = asyncio.create_task(lanes.put("n1:1", manifest(1)))
    await settle()
    gone = asyncio.create_task(lanes.put("n1:1", manifest(2)))
    kept = asyncio.create_task(lanes.put("n1:1", manifest(3)))
    await settle()
    storage.gates[0].set_result(None)
    await settle()
    gone.cancel()
    await settle()
    assert storage.calls[1] == ("batch", "n1:1", [2, 3])
    storage.gates[1].set_result(None)
    await kept
    await first
    assert gone.cancelled()


async def test_manifests_placed_by_different_ring_epochs_never_share_a_call(lanes) -> None:
    lanes, storage = lanes
    first = asyncio.create_task(lanes.put("n1:1", manifest(1), ring_epoch=5))
    await settle()
    later = [asyncio.create_task(lanes.put("n1:1", manifest(i), ring_epoch=e)) for i, e in ((2, 5), (3, 6), (4, 6))]
    await settle()
    # epoch 6 found no call of its own in flight: its two went at once, on their own lane,
    # while epoch 5's second waits for the call in flight on its lane
    assert storage.calls == [("one", "n1:1", [1]), ("batch", "n1:1", [3, 4])]
    storage.gates[0].set_result(None)
    storage.gates[1].set_result(None)
    await settle()
    assert storage.calls[2:] == [("one", "n1:1", [2])]
    storage.gates[2].set_result(None)
    await asyncio.gather(first, *later)
    assert storage.epochs == [5, 6, 5]


async def test_a_lane_cancelled_in_flight_fails_its_callers_instead_of_leaving_them_waiting() -> None:
    storage = FakeStorage()
    drains: list[asyncio.Task] = []
    lanes = ManifestLanes(storage, lambda coro: drains.append(asyncio.create_task(coro)),  # type: ignore[arg-type]
                          max_batch=3, max_waiting=5)
    in_flight = asyncio.create_task(lanes.put("n1:1", manifest(1)))
    await settle()
    waiting = asyncio.create_task(lanes.put("n1:1", manifest(2)))
    await settle()
    assert storage.calls == [("one", "n1:1", [1])]
    drains[0].cancel()  # shutdown cancels the lane's task while its call is in flight
    done, _ = await asyncio.wait([in_flight, waiting], timeout=5)
    assert done == {in_flight, waiting}
    for caller in (in_flight, waiting):
        with pytest.raises(ServiceUnavailable):
            caller.result()
    # the lane holds nothing afterwards: the next write goes at once
    again = asyncio.create_task(lanes.put("n1:1", manifest(3)))
    await settle()
    assert storage.calls[-1] == ("one", "n1:1", [3])
    storage.gates[-1].set_result(None)
    await again


async def test_a_caller_whose_call_has_not_started_within_the_timeout_is_failed_unsent() -> None:
    """On a node that takes connections but answers slowly, a caller deep in the queue is
    failed once it has waited the lane timeout, rather than wait for every call ahead."""
    storage = FakeStorage()
    now = [0.0]
    tasks: list[asyncio.Task] = []
    lanes = ManifestLanes(storage, lambda coro: tasks.append(asyncio.create_task(coro)),  # type: ignore[arg-type]
                          max_batch=1, max_waiting=5, timeout=2.0, clock=lambda: now[0])
    first = asyncio.create_task(lanes.put("n1:1", manifest(1)))
    await settle()
    queued = [asyncio.create_task(lanes.put("n1:1", manifest(i))) for i in (2, 3, 4, 5)]
    await settle()
    now[0] = 1.5
    storage.gates[0].set_result(None)  # the first call answers late
    await settle()
    assert storage.calls == [("one", "n1:1", [1]), ("one", "n1:1", [2])]  # 2 waited 1.5 s: sent
    now[0] = 3.0
    storage.gates[1].set_result(None)
    await settle()
    assert storage.calls == [("one", "n1:1", [1]), ("one", "n1:1", [2])]  # 3, 4 and 5 waited 3 s: not sent
    await first
    await queued[0]  # answered success: its own call succeeded
    for caller in queued[1:]:
        assert caller.done()
        with pytest.raises(ServiceUnavailable):
            caller.result()
    again = asyncio.create_task(lanes.put("n1:1", manifest(6)))  # the lane holds nothing: at once
    await settle()
    assert storage.calls[-1] == ("one", "n1:1", [6])
    storage.gates[-1].set_result(None)
    await again
    await asyncio.gather(*tasks)


async def test_a_caller_within_the_timeout_is_still_carried_after_expired_ones() -> None:
    storage = FakeStorage()
    now = [0.0]
    lanes = ManifestLanes(storage, lambda coro: asyncio.ensure_future(coro),  # type: ignore[arg-type]
                          max_batch=3, max_waiting=5, timeout=2.0, clock=lambda: now[0])
    first = asyncio.create_task(lanes.put("n1:1", manifest(1)))
    await settle()
    old = asyncio.create_task(lanes.put("n1:1", manifest(2)))
    await settle()
    now[0] = 1.9
    young = asyncio.create_task(lanes.put("n1:1", manifest(3)))
    await settle()
    now[0] = 2.5
    storage.gates[0].set_result(None)
    await settle()
    assert storage.calls[1:] == [("one", "n1:1", [3])]  # 2 waited 2.5 s: failed; 3 waited 0.6 s: sent
    with pytest.raises(ServiceUnavailable):
        await old
    storage.gates[1].set_result(None)
    await asyncio.gather(first, young)


@pytest.mark.parametrize("gather_ticks, calls", [(2, [("batch", "n1:1", [0, 1, 2])]),
                                                 (0, [("one", "n1:1", [0]), ("batch", "n1:1", [1, 2])])])
async def test_a_burst_that_one_event_makes_goes_in_one_call(gather_ticks, calls) -> None:
    """Writers resumed together reach the lane a hop or two apart (as PUTs answered by one
    batched commit do): the idle lane's first call waits ``gather_ticks`` loop iterations,
    so the whole burst goes in it; without waiting, the first goes alone and the rest after."""
    storage = FakeStorage()
    lanes = ManifestLanes(storage, lambda coro: asyncio.ensure_future(coro),  # type: ignore[arg-type]
                          gather_ticks=gather_ticks)

    async def writer(i: int) -> None:
        for _ in range(i):  # i hops between the event and this write
            await asyncio.sleep(0)
        await lanes.put("n1:1", manifest(i))

    writers = asyncio.gather(*(writer(i) for i in range(3)))
    for _ in range(8):
        await asyncio.sleep(0)
        for gate in storage.gates:
            if not gate.done():
                gate.set_result(None)
    await writers
    assert storage.calls == calls
