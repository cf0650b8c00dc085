"""Ring epochs of commit manifests (gateway.ring_epochs): which rings a quorum read and a
manifest write consult while a ring change is not yet handed over, as the cluster map says
(the metadata service keeps them: tests/unit/test_fsm_ring_epochs.py). Pure: a topology
stand-in holding a map and its ring."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gateway.ring_epochs import RingEpochs, quorum_lost, quorum_met
from objstore.ring import Ring, build_ring
from objstore.types import ClusterMap, KeptRing, NodeInfo, placement_of


def nodes_of(*ids: str, down: str = "") -> tuple[NodeInfo, ...]:
    return tuple(NodeInfo(n, f"127.0.0.1:{i + 1}", zone=f"zone-{i % 3}", state="down" if n == down else "up")
                 for i, n in enumerate(ids))


@dataclass
class Holder:
    map: ClusterMap
    ring: Ring = field(init=False)

    def __post_init__(self) -> None:
        self.adopt(self.map)

    def adopt(self, cmap: ClusterMap) -> None:
        self.map, self.ring = cmap, build_ring(cmap)

    def node(self, node_id: str) -> NodeInfo | None:
        return self.map.node(node_id)


def drained(ids: tuple[str, ...], gone: str, state: str, epoch: int = 7) -> ClusterMap:
    """The map after ``gone`` (one of ``ids``, all up before) was drained and then put in
    ``state``: the ring without it current, the ring with it kept until handed over."""
    before = nodes_of(*ids)
    after = tuple(dataclasses.replace(n, state=state) if n.node_id == gone else n for n in before)
    return ClusterMap(epoch, after, ring_epoch=epoch - 1, kept_rings=(KeptRing(2, placement_of(before)),))


def test_the_old_rings_are_the_maps_kept_rings():
    old = nodes_of("s1", "s2", "s3", "s4")
    topo = Holder(ClusterMap(3, old, ring_epoch=3))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    assert epochs.old() == [] and epochs.ring_epoch == 3
    first = topo.ring
    draining = (dataclasses.replace(old[0], state="draining"),) + old[1:]  # s1 drained: it leaves the ring
    topo.adopt(ClusterMap(5, draining, ring_epoch=5, kept_rings=(KeptRing(3, placement_of(old)),)))
    key = next(f"k{i}" for i in range(100) if "s1" in first.locate("b", f"k{i}", 3))
    sets = epochs.owner_sets("b", key, 3)
    assert epochs.ring_epoch == 5 and len(epochs.old()) == 1
    assert sets == [topo.ring.locate("b", key, 3), first.locate("b", key, 3)]  # the old ring places as before
    other = next(f"k{i}" for i in range(100) if "s1" not in first.locate("b", f"k{i}", 3))
    assert len(epochs.owner_sets("b", other, 3)) == 1  # owners unchanged: one set
    topo.adopt(ClusterMap(6, topo.map.nodes, ring_epoch=5))  # handed over (HandOverRings)
    assert epochs.old() == [] and epochs.owner_sets("b", key, 3) == [topo.ring.locate("b", key, 3)]


def test_a_gateway_started_during_a_rebalance_consults_the_kept_rings():
    old = nodes_of("s1", "s2", "s3", "s4")
    cmap = ClusterMap(9, nodes_of("s2", "s3", "s4", "s5"), ring_epoch=9, kept_rings=(KeptRing(2, placement_of(old)),))
    epochs = RingEpochs(Holder(cmap))  # type: ignore[arg-type]
    assert [r.node_ids for r in epochs.old()] == [("s1", "s2", "s3", "s4")]


def test_an_old_rings_owner_that_left_the_map_is_not_counted_among_its_owners():
    """A node drained and then removed (or gone ``out``) while its old ring is still kept:
    hand-over does not walk it, and it will not answer, so it is left out of that ring's
    owner set (a drained node, still holding data and walked, stays in it)."""
    ids = ("s1", "s2", "s3", "s4", "s5")
    old_ring = build_ring(ClusterMap(2, nodes_of(*ids)))
    key = next(f"k{i}" for i in range(200) if "s3" in old_ring.locate("b", f"k{i}", 2))
    old_owners = old_ring.locate("b", key, 2)
    topo = Holder(drained(ids, "s3", "draining"))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    current = topo.ring.locate("b", key, 2)
    assert "s3" not in current and epochs.owner_sets("b", key, 2) == [current, old_owners]
    for state in ("removed", "out"):
        topo.adopt(drained(ids, "s3", state, epoch=8))
        left = [n for n in old_owners if n != "s3"]
        assert epochs.owner_sets("b", key, 2) == [current] + ([left] if set(left) != set(current) else [])
    # every old owner gone (s3 removed, s1 out or no longer in the map): no set for that ring
    both = next(f"k{i}" for i in range(500) if set(old_ring.locate("b", f"k{i}", 2)) == {"s1", "s3"})
    cmap = drained(ids, "s3", "removed", epoch=9)
    for s1 in ((dataclasses.replace(cmap.nodes[0], state="out"),), ()):
        topo.adopt(dataclasses.replace(cmap, nodes=s1 + cmap.nodes[1:]))
        assert epochs.owner_sets("b", both, 2) == [topo.ring.locate("b", both, 2)]


def test_a_quorum_needs_each_owner_set():
    sets = [["a", "b", "c"], ["b", "c", "d"]]
    assert not quorum_met(sets, {"a", "b"}, 2)  # the new epoch has only b
    assert quorum_met(sets, {"a", "c", "d"}, 2) and quorum_met(sets, {"b", "c"}, 2)
    assert not quorum_lost(sets, {"a"}, 2) and quorum_lost(sets, {"c", "d"}, 2)
    assert quorum_met([["a"]], {"a"}, 2)  # a ring smaller than the policy: all of it


def test_a_hand_over_waits_for_writes_that_picked_the_old_owners():
    topo = Holder(ClusterMap(1, nodes_of("s1", "s2", "s3", "s4"), ring_epoch=1))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    before = epochs.write_began()
    topo.adopt(ClusterMap(2, nodes_of("s2", "s3", "s4"), ring_epoch=2))
    after = epochs.write_began()
    assert (before, after) == (1, 2) and epochs.older_writes_in_flight()
    epochs.write_ended(before)
    assert not epochs.older_writes_in_flight()  # the one begun under the new ring does not hold it up
    epochs.write_ended(after)
    assert not epochs.older_writes_in_flight()


def test_a_ring_change_forgets_which_nodes_were_walked():
    topo = Holder(ClusterMap(2, nodes_of("s2", "s3", "s4"), ring_epoch=2))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    epochs.old()
    epochs.walked.add("s1")
    topo.adopt(ClusterMap(3, nodes_of("s2", "s3", "s4", "s5"), ring_epoch=3))  # walked towards an older ring
    epochs.old()
    assert epochs.walked == set()


async def test_a_failed_hand_over_pass_of_any_kind_does_not_end_the_loop(monkeypatch, caplog):
    """A KeyError or ValueError (a malformed page) is logged and the pass runs again;
    only cancellation ends the loop."""
    import asyncio

    from gateway import ring_epochs

    class Kept:
        def old(self) -> list[str]:
            return ["a kept ring"]

    raised = [KeyError("keys"), ValueError("bad manifest")]
    passes: list[int] = []
    three = asyncio.get_running_loop().create_future()

    async def fake_pass(ctx: object, epochs: object) -> bool:
        passes.append(len(passes))
        if raised:
            raise raised.pop(0)
        if not three.done():
            three.set_result(None)
        return True

    monkeypatch.setattr(ring_epochs, "hand_over_once", fake_pass)
    loop_task = asyncio.ensure_future(ring_epochs.hand_over_forever(None, Kept(), every=0))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(three, 5)
        assert not loop_task.done() and len(passes) >= 3
        failures = [r for r in caplog.records if r.name == "gateway.ring_epochs" and r.exc_info]
        assert [type(r.exc_info[1]) for r in failures] == [KeyError, ValueError]
    finally:
        loop_task.cancel()
    try:
        await loop_task
    except asyncio.CancelledError:
        pass
    assert loop_task.cancelled()
