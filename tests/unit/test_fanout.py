"""FanOut's rules with scripted uploads (no network): handoff on a 507 before the body,
stragglers abandoned only once W others acknowledged or keep up, never below W."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from gateway.datapath.fanout import FanOut
from gateway.topology import Topology
from objstore.errors import InsufficientReplicas, InsufficientStorage
from objstore.ring import build_ring
from objstore.types import ClusterMap, NodeInfo

STRAGGLER = 0.05
NODES = [NodeInfo(f"s{i}", f"127.0.0.1:{7000 + i}") for i in range(1, 6)]


class Storage:
    """Scripted nodes: each node id's behaviour (``ok``, ``full``, ``stall``, ``stop_after_1``,
    ``silent_at_end``: takes the whole body, then never answers)."""

    def __init__(self, **behaviour: str) -> None:
        self.behaviour = behaviour
        self.received: dict[str, bytes] = {}
        self.deleted: list[str] = []

    async def upload(self, node: NodeInfo, index: int, body: AsyncIterator[bytes] | bytes) -> dict:
        how = self.behaviour.get(node.node_id, "ok")
        if how == "full":
            raise InsufficientStorage("full")
        if how == "stall":
            await asyncio.Event().wait()
        got = bytearray()
        if isinstance(body, bytes):
            got += body
        else:
            async for chunk in body:
                got += chunk
                if how == "stop_after_1":
                    await asyncio.Event().wait()  # takes one chunk, then nothing more
        if how == "silent_at_end":
            await asyncio.Event().wait()
        self.received[node.node_id] = bytes(got)
        return {"size": len(got)}

    async def delete_blob(self, address: str, version_id: str, shard: int) -> None:
        self.deleted.append(address)


def topology() -> Topology:
    topo = Topology(lambda: None)  # type: ignore[arg-type, return-value]
    topo.map = ClusterMap(1, tuple(NODES))
    topo.ring = build_ring(topo.map)
    return topo


def fan(storage: Storage, topo: Topology, n: int = 3, quorum: int = 2, handoff: bool = True) -> FanOut:
    nodes = NODES[:n]
    spare = [nd for nd in NODES if nd not in nodes]

    def next_free(used) -> NodeInfo | None:  # noqa: ANN001
        return next((nd for nd in spare if nd.node_id not in used and not topo.is_suspect(nd.node_id)), None)

    return FanOut(storage, topo, nodes, storage.upload, version_id="v", quorum=quorum,  # type: ignore[arg-type]
                  straggler=STRAGGLER, handoff=next_free if handoff else None)


async def stream(f: FanOut, chunks: list[bytes], depth: int = 2) -> list[str]:
    f.open_streams(depth)
    for c in chunks:
        await f.send([c] * len(f.targets))
    return await f.finish()


CHUNKS = [bytes([i]) * 10 for i in range(6)]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_full_node_is_replaced_by_a_handoff_that_gets_every_byte(streamed):
    storage, topo = Storage(s2="full"), topology()
    f = fan(storage, topo)
    placement = await (stream(f, CHUNKS) if streamed else f.send_whole([b"".join(CHUNKS)] * 3))
    assert placement == ["s1", "s4", "s3"]
    assert storage.received["s4"] == b"".join(CHUNKS)
    assert topo.is_suspect("s2")


async def test_a_full_node_without_a_handoff_leaves_its_target_empty():
    storage, topo = Storage(s2="full"), topology()
    placement = await fan(storage, topo, handoff=False).send_whole([b"x"] * 3)
    assert placement == ["s1", "", "s3"]


async def test_a_silent_node_is_abandoned_once_w_acknowledged():
    storage, topo = Storage(s3="stall"), topology()
    placement = await fan(storage, topo).send_whole([b"x"] * 3)
    assert placement == ["s1", "s2", ""] and topo.is_suspect("s3")


async def test_a_node_that_stops_taking_chunks_is_dropped_while_w_others_keep_up():
    storage, topo = Storage(s1="stop_after_1"), topology()
    assert await stream(fan(storage, topo), CHUNKS) == ["", "s2", "s3"]
    assert storage.received["s2"] == b"".join(CHUNKS)


async def test_with_fewer_than_w_others_keeping_up_a_stalled_node_is_waited_for():
    storage, topo = Storage(s2="stall", s3="stall"), topology()
    f = fan(storage, topo)
    f.open_streams(2)
    for _ in range(2):
        await f.send([b"a"] * 3)  # s2's and s3's queues are full now
    sending = asyncio.ensure_future(f.send([b"a"] * 3))
    await asyncio.sleep(5 * STRAGGLER)
    assert len(f.live) == 3 and not sending.done()  # dropping s2 would leave only s1 keeping up
    sending.cancel()
    await f.abort(RuntimeError("the client went away"))


async def test_below_w_the_write_fails_and_the_stored_copy_is_deleted():
    storage, topo = Storage(s2="full", s3="full"), topology()
    with pytest.raises(InsufficientReplicas):
        await fan(storage, topo, handoff=False).send_whole([b"x"] * 3)
    assert storage.deleted == [NODES[0].address]


async def test_below_w_silent_nodes_are_handed_off_after_the_straggler_bound():
    """Two of three nodes take the write and never answer (cut off over kept-alive
    connections, paused): rather than wait for the storage client's timeout on each and
    fail below W, their targets go to handoff nodes once the straggler bound passed."""
    storage, topo = Storage(s1="stall", s2="stall"), topology()
    placement = await asyncio.wait_for(fan(storage, topo).send_whole([b"x"] * 3), 40 * STRAGGLER)
    assert placement == ["s4", "s5", "s3"]
    assert storage.received == {"s3": b"x", "s4": b"x", "s5": b"x"}
    assert topo.is_suspect("s1") and topo.is_suspect("s2")


async def test_below_w_a_handoff_that_is_silent_too_is_handed_off_again():
    storage, topo = Storage(s1="stall", s4="stall"), topology()
    placement = await asyncio.wait_for(fan(storage, topo, quorum=3).send_whole([b"x"] * 3), 40 * STRAGGLER)
    assert placement == ["s5", "s2", "s3"]


async def test_a_silent_handoff_gets_no_second_straggler_bound_once_w_stored():
    """s1 and s2 silent; their handoffs s4 (silent too) and s5: once s5 and s3 made W, the
    write does not wait another straggler bound for s4 (silent nodes cost one bound)."""
    storage, topo = Storage(s1="stall", s2="stall", s4="stall"), topology()
    f = fan(storage, topo)
    f.straggler = bound = 0.3
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    placement = await asyncio.wait_for(f.send_whole([b"x"] * 3), 10 * bound)
    took = loop.time() - t0
    assert placement == ["", "s5", "s3"]
    assert bound <= took < 1.6 * bound, took  # one bound, not two


async def test_a_target_handed_off_for_a_full_node_gets_its_own_straggler_bound_below_w():
    """s2 answers 507 late (at half the bound) and its handoff s4 answers within a bound
    of being sent: the silence check at the write's first bound must not abandon s4 (and
    suspect it) for the time s2 took; each target is silent a bound after it was sent."""
    bound = 0.5

    class Slow(Storage):
        async def upload(self, node: NodeInfo, index: int, body: AsyncIterator[bytes] | bytes) -> dict:
            if node.node_id == "s2":
                await asyncio.sleep(0.5 * bound)
                raise InsufficientStorage("full")
            if node.node_id == "s4":
                await asyncio.sleep(0.8 * bound)
            return await super().upload(node, index, body)

    storage, topo = Slow(), topology()
    f = fan(storage, topo, quorum=3)
    f.straggler = bound
    placement = await asyncio.wait_for(f.send_whole([b"x"] * 3), 10 * bound)
    assert placement == ["s1", "s4", "s3"]
    assert not topo.is_suspect("s4") and "s5" not in storage.received


# --- the write itself cancelled (client gone, request timed out) -----------------------------

LONG = 30.0  # a straggler bound no test waits out: what is still running when cancelled stays so


async def cancel_once_running(write: asyncio.Future, until) -> None:  # noqa: ANN001
    """Cancel ``write`` once ``until()`` holds, and let the cancellation settle."""
    for _ in range(200):
        if until():
            break
        await asyncio.sleep(0.005)
    assert until() and not write.done()
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    await asyncio.sleep(0)  # cancelled uploads end on their next step


def still_running(f: FanOut) -> list[int]:
    return [t.index for t in f.targets if t.task is not None and not t.task.done()]


async def test_cancelling_a_whole_body_write_below_w_cancels_its_uploads_and_handoffs():
    """s2 is full (handed off to s4) and s3, s4 are silent: cancelling the write while it
    waits below W leaves no upload running, the handoff's included."""
    storage, topo = Storage(s2="full", s3="stall", s4="stall"), topology()
    f = fan(storage, topo)
    f.straggler = LONG
    write = asyncio.ensure_future(f.send_whole([b"x"] * 3))
    await cancel_once_running(write, lambda: f.targets[1].node.node_id == "s4" and "s1" in storage.received)
    assert still_running(f) == []
    assert f.targets[1].task.cancelled() and f.targets[2].task.cancelled()


async def test_cancelling_a_whole_body_write_after_w_cancels_its_stragglers():
    """Once W stored the blob a straggler gets a bound more; if the write is cancelled in
    that time (no record will name the blob) the straggler's upload is cancelled with it."""
    storage, topo = Storage(s3="stall"), topology()
    f = fan(storage, topo)
    f.straggler = LONG
    write = asyncio.ensure_future(f.send_whole([b"x"] * 3))
    await cancel_once_running(write, lambda: {"s1", "s2"} <= set(storage.received))
    assert still_running(f) == [] and f.targets[2].task.cancelled()


async def test_cancelling_a_streamed_write_while_it_collects_cancels_its_uploads():
    storage, topo = Storage(s3="silent_at_end"), topology()
    f = fan(storage, topo)
    f.straggler = LONG
    write = asyncio.ensure_future(stream(f, CHUNKS))
    await cancel_once_running(write, lambda: {"s1", "s2"} <= set(storage.received))
    assert still_running(f) == [] and f.targets[2].task.cancelled()


async def test_aborting_a_cancelled_streamed_write_does_not_wait_for_a_stalled_upload():
    """s1 took a chunk and reads no more (a stalled node): the write is cancelled while the
    body streams; ending its uploads must not wait on s1 (it would never read the abort)."""
    storage, topo = Storage(s1="stop_after_1"), topology()
    f = fan(storage, topo)
    f.straggler = LONG
    f.open_streams(2)
    await f.send([b"a"] * 3)
    await asyncio.sleep(0.01)
    assert still_running(f) == [0, 1, 2]
    await asyncio.wait_for(f.abort(asyncio.CancelledError()), 1.0)
    assert still_running(f) == []


async def test_an_upload_that_failed_unseen_as_the_write_was_cancelled_leaves_no_unretrieved_error():
    """An upload is a future (a blob queued in its node's lane) that fails just as the
    write is cancelled (the client went away): its error is not wanted, and no "Future
    exception was never retrieved" is logged for it."""
    import gc

    from objstore.errors import ServiceUnavailable

    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
    uploads: dict[str, asyncio.Future] = {}

    def upload(node: NodeInfo, index: int, body: object) -> asyncio.Future:
        uploads[node.node_id] = loop.create_future()
        return uploads[node.node_id]

    f = FanOut(Storage(), topology(), NODES[:3], upload, version_id="v", quorum=2,  # type: ignore[arg-type]
               straggler=LONG)
    write = asyncio.ensure_future(f.send_whole([b"x"] * 3))
    await asyncio.sleep(0)
    uploads["s1"].set_exception(ServiceUnavailable("s1 failed as the client went away"))
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    assert uploads["s2"].cancelled() and uploads["s3"].cancelled()
    del write, f
    uploads.clear()
    gc.collect()
    await asyncio.sleep(0)
    assert reported == []
