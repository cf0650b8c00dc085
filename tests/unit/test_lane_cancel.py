"""A call in flight on a coalescing lane whose callers all went away (objstore.coalescing,
``cancel_abandoned``, as the blob lanes use it): it is cancelled, as each caller's own call
would have been, and the lane goes on; a call still carrying another caller's item runs on."""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine

import pytest

from objstore.coalescing import Lanes


class Peer:
    """Calls that end when the test says (``gates``); records what each carried and which
    were cancelled."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gates: list[asyncio.Future[None]] = []
        self.cancelled: list[list[int]] = []

    async def _call(self, items: list[int]) -> None:
        gate = asyncio.get_running_loop().create_future()
        self.calls.append(items)
        self.gates.append(gate)
        try:
            await gate
        except asyncio.CancelledError:
            self.cancelled.append(items)
            raise

    async def one(self, lane: str, item: int, seconds: float) -> int:
        await self._call([item])
        return item

    async def many(self, lane: str, items: list[int], seconds: float) -> list[int]:
        await self._call(items)
        return items


def lanes(peer: Peer, drains: list[asyncio.Task], cancel_abandoned: bool = True) -> Lanes[str, int, int]:
    def spawn(coro: Coroutine[Any, Any, Any]) -> None:
        drains.append(asyncio.ensure_future(coro))

    return Lanes(peer.one, peer.many, spawn, max_batch=4, max_waiting=8, timeout=30.0,
                 cancel_abandoned=cancel_abandoned)


async def settle() -> None:
    for _ in range(6):
        await asyncio.sleep(0)


@pytest.mark.parametrize("cancel_abandoned", [True, False])
async def test_a_call_whose_only_caller_went_away_is_cancelled_and_the_lane_goes_on(cancel_abandoned):
    peer, drains = Peer(), []
    lane = lanes(peer, drains, cancel_abandoned)
    gone = asyncio.ensure_future(lane.submit("n1", 1))
    await settle()
    behind = [asyncio.ensure_future(lane.submit("n1", i)) for i in (2, 3)]
    await settle()
    assert peer.calls == [[1]]
    gone.cancel()
    await settle()
    if not cancel_abandoned:  # the call runs on, to its answer or its timeout
        assert peer.cancelled == [] and len(peer.calls) == 1
        peer.gates[0].set_result(None)
        await settle()
    else:
        assert peer.cancelled == [[1]]
    assert peer.calls[1:] == [[2, 3]]  # the items behind it went next, on the same lane
    assert not drains[0].done()
    peer.gates[1].set_result(None)
    assert await asyncio.gather(*behind) == [2, 3]


async def test_a_call_carrying_another_callers_item_runs_on():
    peer, drains = Peer(), []
    lane = lanes(peer, drains)
    first = asyncio.ensure_future(lane.submit("n1", 1))
    await settle()
    gone, kept = (asyncio.ensure_future(lane.submit("n1", i)) for i in (2, 3))
    await settle()
    peer.gates[0].set_result(None)
    await settle()
    assert peer.calls[1] == [2, 3]
    gone.cancel()
    await settle()
    assert peer.cancelled == []
    peer.gates[1].set_result(None)
    assert await kept == 3 and await first == 1


async def test_shutdown_still_fails_the_callers_of_a_cancelled_drain():
    peer, drains = Peer(), []
    lane = lanes(peer, drains)
    in_flight = asyncio.ensure_future(lane.submit("n1", 1))
    await settle()
    drains[0].cancel()
    with pytest.raises(Exception) as err:
        await asyncio.wait_for(in_flight, 5)
    assert "abandoned" in str(err.value)


async def test_a_blob_write_whose_put_went_away_is_not_left_running_on_a_silent_node():
    """The blob lanes cancel a lone blob write in flight once its PUT is cancelled, rather
    than hold the connection to a node that does not answer until the storage timeout."""
    from gateway.datapath.blob_lanes import BlobLanes

    class Silent:
        call_seconds = 30.0
        running = 0

        async def put_blob(self, *args: Any, **kwargs: Any) -> dict:
            Silent.running += 1
            try:
                await asyncio.sleep(self.call_seconds)
                return {}
            finally:
                Silent.running -= 1

    drains: list[asyncio.Task] = []
    blobs = BlobLanes(Silent(), lambda coro: drains.append(asyncio.ensure_future(coro)),  # type: ignore[arg-type]
                      coalesce=True)
    put = asyncio.ensure_future(blobs.put("n1:1", "v1", 0, "b", "k", "replica:3", b"x", 1))
    await settle()
    assert Silent.running == 1
    put.cancel()
    await settle()
    assert Silent.running == 0
    assert drains[0].done() and not drains[0].cancelled()  # it ended as an idle lane does


@pytest.mark.parametrize("in_flight", [False, True])
async def test_a_replica_write_cancelled_takes_its_blobs_out_of_the_lanes(in_flight):
    """A small body's replicas wait in their nodes' blob lanes as futures (no task each):
    cancelling the PUT takes the ones not yet sent out of their lanes (never sent), and
    cancels the calls in flight that carry nothing else."""
    from gateway.datapath.blob_lanes import BlobLanes
    from gateway.datapath.replicate import write_replicas
    from gateway.topology import Topology
    from objstore.ring import build_ring
    from objstore.types import ClusterMap, NodeInfo

    class Silent:
        call_seconds = 30.0

        def __init__(self) -> None:
            self.started = 0
            self.running = 0

        async def put_blob(self, *args: Any, **kwargs: Any) -> dict:
            self.started += 1
            self.running += 1
            try:
                await asyncio.sleep(self.call_seconds)
                return {}
            finally:
                self.running -= 1

    async def body():  # noqa: ANN202
        yield b"x"

    nodes = tuple(NodeInfo(f"s{i}", f"127.0.0.1:{7000 + i}") for i in range(1, 4))
    topo = Topology(lambda: None)  # type: ignore[arg-type, return-value]
    topo.map = ClusterMap(1, nodes)
    topo.ring = build_ring(topo.map)
    storage, drains = Silent(), []
    blobs = BlobLanes(storage, lambda coro: drains.append(asyncio.ensure_future(coro)),  # type: ignore[arg-type]
                      coalesce=True)
    write = asyncio.ensure_future(write_replicas(
        storage, topo, nodes, version_id="v", bucket="b", key="k", policy="replica:3", size=1,  # type: ignore[arg-type]
        chunks=body(), write_quorum=2, blobs=blobs))
    await asyncio.sleep(0)
    if in_flight:
        await settle()
        assert storage.running == 3
    else:
        assert storage.started == 0 and sum(len(w) for w in blobs._waiting.values()) == 3
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    await settle()
    assert storage.running == 0 and storage.started == (3 if in_flight else 0)
    assert not any(blobs._waiting.values()) and all(d.done() and not d.cancelled() for d in drains)
