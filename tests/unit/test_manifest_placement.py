"""A commit manifest's write to its ring nodes (gateway.datapath.manifests.publish) against
fake lanes: answered at the write quorum, the stores still running finished without a task;
after a node was drained and removed, its keys' writes and quorum reads do not wait for it."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from gateway.datapath import manifests
from gateway.ring_epochs import RingEpochs
from objstore.errors import ServiceUnavailable
from objstore.ring import build_ring
from objstore.types import ClusterMap, NodeInfo, Policy
from tests.unit.test_ring_epochs import Holder, drained, nodes_of


class _Rings:
    def __init__(self) -> None:
        self.ring_epoch = 1
        self.ended: list[int] = []

    async def catch_up(self, epoch: int = 0, ring_epoch: int = 0) -> None:
        return None

    def owner_sets(self, bucket: str, key: str, n: int) -> list[list[str]]:
        return [["n1", "n2", "n3"]]

    def write_began(self) -> int:
        return self.ring_epoch

    def write_ended(self, token: int) -> None:
        self.ended.append(token)


class _Lanes:
    def __init__(self) -> None:
        self.sent: dict[str, asyncio.Future] = {}

    def send(self, address: str, manifest: object, ring_epoch: int = 0) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.sent[address] = fut
        return fut


class _Retries:
    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, attempt: object, what: str) -> bool:
        self.started.append(what)
        return True


def _ctx() -> SimpleNamespace:
    nodes = {f"n{i}": NodeInfo(f"n{i}", f"127.0.0.1:{9000 + i}") for i in (1, 2, 3)}
    return SimpleNamespace(newest_commit=0, rings=_Rings(), manifest_lanes=_Lanes(), manifest_retries=_Retries(),
                           topology=SimpleNamespace(node=nodes.get))


async def test_the_write_is_answered_at_its_quorum_and_the_last_store_is_finished_by_its_callback():
    ctx = _ctx()
    write = asyncio.ensure_future(manifests.publish(ctx, "b", "k", 7, None, Policy("replica", 3), 2))
    await asyncio.sleep(0)
    sent = ctx.manifest_lanes.sent
    assert sorted(sent) == ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]
    sent["127.0.0.1:9001"].set_result(None)
    sent["127.0.0.1:9002"].set_result(None)
    assert await asyncio.wait_for(write, 1) == 2
    assert ctx.rings.ended == []  # the third store still runs: the write's ring epoch is still in use
    sent["127.0.0.1:9003"].set_exception(ServiceUnavailable("node gone"))
    await asyncio.sleep(0)
    assert ctx.rings.ended == [1]  # ended once, with the last store
    assert ctx.manifest_retries.started == ["manifest of b/k@7 to n3"]  # the failed store is sent again


async def test_a_write_whose_stores_all_answered_ends_at_once_and_below_quorum_fails():
    ctx = _ctx()
    write = asyncio.ensure_future(manifests.publish(ctx, "b", "k", 8, None, Policy("replica", 3), 3))
    await asyncio.sleep(0)
    for fut in ctx.manifest_lanes.sent.values():
        fut.set_result(None)
    assert await asyncio.wait_for(write, 1) == 3 and ctx.rings.ended == [1]

    ctx = _ctx()
    write = asyncio.ensure_future(manifests.publish(ctx, "b", "k", 9, None, Policy("replica", 3), 2))
    await asyncio.sleep(0)
    sent = ctx.manifest_lanes.sent
    sent["127.0.0.1:9001"].set_exception(ServiceUnavailable("down"))
    sent["127.0.0.1:9002"].set_exception(ConnectionResetError())
    with pytest.raises(ServiceUnavailable):  # stored on fewer than its quorum: the write is not answered OK
        await asyncio.wait_for(write, 1)
    assert ctx.rings.ended == []  # the third store still runs
    sent["127.0.0.1:9003"].set_result(None)
    await asyncio.sleep(0)
    assert ctx.rings.ended == [1] and len(ctx.manifest_retries.started) == 2


async def test_a_write_whose_owners_cannot_be_picked_still_ends_its_ring_epoch_count():
    """The count began before the owners were picked: picking them failing ends it too (a
    count left open would hold every later ring hand-over back for good)."""
    ctx = _ctx()

    def broken(bucket: str, key: str, n: int) -> list[list[str]]:
        raise ValueError("a kept ring names a node twice")

    ctx.rings.owner_sets = broken
    with pytest.raises(ValueError):
        await manifests.publish(ctx, "b", "k", 10, None, Policy("replica", 3), 2)
    assert ctx.rings.ended == [1] and ctx.manifest_lanes.sent == {}


async def test_a_late_store_whose_outcome_raises_is_logged_and_still_ends_the_count(caplog):
    ctx = _ctx()

    def broken(attempt: object, what: str) -> bool:
        raise RuntimeError("the retry table is broken")

    ctx.manifest_retries.start = broken
    write = asyncio.ensure_future(manifests.publish(ctx, "b", "k", 11, None, Policy("replica", 3), 2))
    await asyncio.sleep(0)
    sent = ctx.manifest_lanes.sent
    sent["127.0.0.1:9001"].set_result(None)
    sent["127.0.0.1:9002"].set_result(None)
    assert await asyncio.wait_for(write, 1) == 2
    sent["127.0.0.1:9003"].set_exception(ServiceUnavailable("node gone"))
    await asyncio.sleep(0)
    assert ctx.rings.ended == [1]
    assert any("the retry table is broken" in r.getMessage() for r in caplog.records)


async def test_a_write_and_a_quorum_read_after_a_node_was_drained_and_removed_do_not_wait_for_it():
    """ec:2+1 (two manifest replicas, W = R = 2): a node drained, removed and stopped while
    the ring it left is still kept (its hand-over pass not yet run). The write and the read
    of a key it owned under that ring are answered by the current owners and the old
    ring's owner left; the removed node is not asked (it refused connections, and the
    write was a 503 "only 0 of the 2 manifest replicas")."""
    ids = ("s1", "s2", "s3", "s4", "s5")
    old_ring = build_ring(ClusterMap(2, nodes_of(*ids)))
    key = next(f"k{i}" for i in range(200) if "s3" in old_ring.locate("b", f"k{i}", 2))
    topo = Holder(drained(ids, "s3", "removed"))
    gone = topo.node("s3").address
    ctx = SimpleNamespace(newest_commit=0, rings=RingEpochs(topo), manifest_lanes=_Lanes(),
                          manifest_retries=_Retries(), topology=topo)
    policy = Policy.parse("ec:2+1")
    write = asyncio.ensure_future(manifests.publish(ctx, "b", key, 29, None, policy, 3))
    await asyncio.sleep(0)
    sent = ctx.manifest_lanes.sent
    if gone in sent:
        sent[gone].set_exception(ConnectionRefusedError(111, "Connection refused"))
        await asyncio.sleep(0)
    for address, fut in sent.items():
        if not fut.done():
            fut.set_result(None)
    assert await asyncio.wait_for(write, 1) >= 2
    assert gone not in sent

    asked: list[str] = []

    async def get_manifests(address: str, bucket: str, k: str, ring_epoch: int = 0) -> list:
        asked.append(address)
        if address == gone:
            raise ConnectionRefusedError(111, "Connection refused")
        return []

    ctx.storage = SimpleNamespace(get_manifests=get_manifests)
    ctx.background = lambda coro: asyncio.ensure_future(coro)
    got = await asyncio.wait_for(manifests.gather(ctx, "b", key, policy, 2), 1)
    assert got.answered >= 2 and gone not in asked
