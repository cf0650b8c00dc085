"""Where the gateway puts new blobs and which replicas it reads first, given node states
(gateway.topology, gateway.datapath.reader): only up nodes take new blobs, each other
node is replaced in its own slot by a handoff, down nodes are read last; and the long-poll
loop that keeps the map current."""
from __future__ import annotations

import asyncio

import pytest

from gateway.datapath.reader import replica_order
from gateway.topology import POLL_SECONDS, Topology
from objstore.errors import InsufficientReplicas
from objstore.types import ClusterMap, NodeInfo

ZONES = ("za", "zb", "zc")


def cluster(n: int = 8, epoch: int = 1, **states: str) -> ClusterMap:
    return ClusterMap(epoch, tuple(NodeInfo(f"s{i}", f"h:{i}", zone=ZONES[i % 3], state=states.get(f"s{i}", "up"))
                                   for i in range(1, n + 1)))


def topology(cmap: ClusterMap) -> Topology:
    async def fetch() -> ClusterMap:
        return cmap
    topo = Topology(fetch)
    topo.adopt(cmap)
    return topo


@pytest.mark.parametrize("bad_state", ["down", "full"])
async def test_placement_swaps_unwritable_nodes_for_handoffs_in_their_own_slots(bad_state: str) -> None:
    healthy = topology(cluster())
    keys = [f"key-{i}" for i in range(60)]
    for key in keys:
        ring_choice = [n.node_id for n in await healthy.place("b", key, 6)]  # ec:4+2: shard i on node i
        victim = ring_choice[2]
        topo = topology(cluster(**{victim: bad_state}))
        placed = [n.node_id for n in await topo.place("b", key, 6)]
        assert len(placed) == 6 and len(set(placed)) == 6 and victim not in placed
        # Every other shard stays on the ring's node for it; the handoff takes shard 2.
        assert [p for i, p in enumerate(placed) if i != 2] == [p for i, p in enumerate(ring_choice) if i != 2]
        assert placed[2] == topo.ring.locate_extra("b", key, 6, {victim}, limit=1)[0]


async def test_suspected_nodes_are_avoided_like_down_ones() -> None:
    topo = topology(cluster())
    first = [n.node_id for n in await topo.place("b", "k", 3)]
    topo.suspect(first[0])
    again = [n.node_id for n in await topo.place("b", "k", 3)]
    assert first[0] not in again and again[1:] == first[1:]


async def test_placement_is_shorter_when_too_few_nodes_can_take_blobs() -> None:
    topo = topology(cluster(4, s1="down", s2="full"))
    placed = [n.node_id for n in await topo.place("b", "k", 3)]
    assert sorted(placed) == ["s3", "s4"]
    topo = topology(cluster(2, s1="down", s2="full"))
    with pytest.raises(InsufficientReplicas):
        await topo.place("b", "k", 3)


async def test_out_and_draining_nodes_leave_the_ring_and_take_nothing() -> None:
    topo = topology(cluster(6, s1="out", s2="draining"))
    for i in range(30):
        placed = {n.node_id for n in await topo.place("b", f"k{i}", 3)}
        assert placed.isdisjoint({"s1", "s2"}) and len(placed) == 3


def test_reads_try_down_and_suspected_nodes_last() -> None:
    topo = topology(cluster(6, s2="down", s4="out", s5="full"))
    topo.suspect("s1")
    assert replica_order(topo, ["s1", "s2", "s3", "s4", "s5"]) == ["s3", "s5", "s1", "s2", "s4"]


async def test_the_map_follows_the_long_poll_and_backs_off_when_it_fails() -> None:
    maps = [cluster(epoch=2), cluster(epoch=3, s1="down")]
    asked: list[tuple[int, float]] = []
    sleeps: list[float] = []
    failures = [OSError("refused"), OSError("refused")]

    async def wait(epoch: int, timeout: float) -> ClusterMap:
        asked.append((epoch, timeout))
        if failures:
            raise failures.pop()
        if not maps:
            await asyncio.Event().wait()  # held, as a leader holds a poll
        return maps.pop(0)

    async def sleep(d: float) -> None:
        sleeps.append(d)

    async def fetch() -> ClusterMap:
        return cluster(epoch=1)

    topo = Topology(fetch, wait=wait, sleep=sleep)
    await topo.start()
    try:
        for _ in range(100):
            if topo.map.epoch == 3:
                break
            await asyncio.sleep(0)
        assert topo.map.epoch == 3 and topo.node("s1").state == "down"
        assert asked[:4] == [(1, POLL_SECONDS), (1, POLL_SECONDS), (1, POLL_SECONDS), (2, POLL_SECONDS)]
        assert sleeps == [0.2, 0.4]  # backoff after each failure, none after an answer
    finally:
        await topo.stop()


async def test_a_poll_answered_early_without_news_pauses_before_the_next() -> None:
    sleeps: list[float] = []

    async def wait(epoch: int, timeout: float) -> ClusterMap:
        return cluster(epoch=epoch)

    async def sleep(d: float) -> None:
        sleeps.append(d)

    async def fetch() -> ClusterMap:
        return cluster(epoch=1)

    topo = Topology(fetch, wait=wait, sleep=sleep)
    topo.adopt(cluster(epoch=1))
    await topo.follow_once()
    assert sleeps == [1.0]


def test_placements_are_remembered_per_ring_and_bounded(monkeypatch):
    from gateway import topology
    from objstore.ring import build_ring
    from objstore.types import ClusterMap, NodeInfo

    monkeypatch.setattr(topology, "_located", {})
    monkeypatch.setattr(topology, "LOCATED", 4)
    nodes = tuple(NodeInfo(f"n{i}", f"127.0.0.1:{9000 + i}", zone=f"z{i % 3}") for i in range(6))
    ring = build_ring(ClusterMap(1, nodes))
    walks = []
    real = type(ring).locate

    def counted(self, bucket, key, n):  # noqa: ANN001, ANN202
        walks.append((self, bucket, key, n))
        return real(self, bucket, key, n)

    monkeypatch.setattr(type(ring), "locate", counted)
    first = topology.locate(ring, "b", "k", 3)
    again = topology.locate(ring, "b", "k", 3)
    assert first == again == real(ring, "b", "k", 3) and len(walks) == 1
    again.append("changed")  # a caller's list is its own
    assert topology.locate(ring, "b", "k", 3) == first
    other = build_ring(ClusterMap(2, nodes[:5]))  # another ring is walked for itself
    assert topology.locate(other, "b", "k", 3) == real(other, "b", "k", 3) and len(walks) == 2
    for i in range(10):
        topology.locate(ring, "b", f"k{i}", 3)
    assert len(topology._located) <= topology.LOCATED
