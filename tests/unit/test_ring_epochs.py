"""Ring epochs of commit manifests (gateway.ring_epochs): which rings a quorum read and a
manifest write consult while a ring change is not yet handed over. Pure: a topology
stand-in holding a ring."""
from __future__ import annotations

from dataclasses import dataclass

from gateway.ring_epochs import RingEpochs, quorum_lost, quorum_met
from objstore.ring import Ring, build_ring
from objstore.types import ClusterMap, NodeInfo


def ring_of(*ids: str, epoch: int = 1, down: str = "") -> Ring:
    nodes = tuple(NodeInfo(n, f"127.0.0.1:{i + 1}", zone=f"zone-{i % 3}", state="down" if n == down else "up")
                  for i, n in enumerate(ids))
    return build_ring(ClusterMap(epoch, nodes))


@dataclass
class Holder:
    ring: Ring


def test_a_ring_change_keeps_the_old_ring_until_it_is_handed_over():
    topo = Holder(ring_of("s1", "s2", "s3", "s4"))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    assert epochs.old() == [] and len(epochs.owner_sets("b", "k", 3)) == 1
    topo.ring = ring_of("s1", "s2", "s3", "s4", epoch=2, down="s2")  # a node down: same placement
    assert epochs.old() == [] and epochs.changes == 0
    first = topo.ring
    topo.ring = ring_of("s2", "s3", "s4", epoch=3)  # s1 drained
    key = next(f"k{i}" for i in range(100) if "s1" in first.locate("b", f"k{i}", 3))
    sets = epochs.owner_sets("b", key, 3)
    assert epochs.changes == 1 and epochs.old() == [first]
    assert sets == [topo.ring.locate("b", key, 3), first.locate("b", key, 3)]
    other = next(f"k{i}" for i in range(100) if "s1" not in first.locate("b", f"k{i}", 3))
    assert len(epochs.owner_sets("b", other, 3)) == 1  # owners unchanged: one set
    epochs.handed_over(epochs.old())
    assert epochs.old() == [] and epochs.owner_sets("b", key, 3) == [topo.ring.locate("b", key, 3)]


def test_returning_to_an_old_ring_keeps_the_one_in_between():
    a, b = ring_of("s1", "s2", "s3", "s4"), ring_of("s2", "s3", "s4", epoch=2)
    topo = Holder(a)
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    topo.ring = b
    assert epochs.old() == [a]
    topo.ring = ring_of("s1", "s2", "s3", "s4", epoch=3)  # a again: b's writes are on b's owners
    assert epochs.old() == [b]


def test_the_rings_kept_are_bounded():
    topo = Holder(ring_of("s0"))
    epochs = RingEpochs(topo, max_kept=2)  # type: ignore[arg-type]
    for n in range(1, 5):
        topo.ring = ring_of(*(f"s{i}" for i in range(n + 1)), epoch=n + 1)
        epochs.old()
    assert len(epochs.old()) == 2 and epochs.changes == 4


def test_an_empty_first_ring_is_not_kept():
    topo = Holder(build_ring(ClusterMap(0, ())))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    topo.ring = ring_of("s1", "s2", "s3")
    assert epochs.old() == []


def test_a_quorum_needs_each_owner_set():
    sets = [["a", "b", "c"], ["b", "c", "d"]]
    assert not quorum_met(sets, {"a", "b"}, 2)  # the new epoch has only b
    assert quorum_met(sets, {"a", "c", "d"}, 2) and quorum_met(sets, {"b", "c"}, 2)
    assert not quorum_lost(sets, {"a"}, 2) and quorum_lost(sets, {"c", "d"}, 2)
    assert quorum_met([["a"]], {"a"}, 2)  # a ring smaller than the policy: all of it


def test_a_hand_over_waits_for_writes_that_picked_the_old_owners():
    topo = Holder(ring_of("s1", "s2", "s3", "s4"))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    before = epochs.write_began()
    topo.ring = ring_of("s2", "s3", "s4", epoch=2)
    after = epochs.write_began()
    assert epochs.older_writes_in_flight()
    epochs.write_ended(before)
    assert not epochs.older_writes_in_flight()  # the one begun under the new ring does not hold it up
    epochs.write_ended(after)
    assert not epochs.older_writes_in_flight()


def test_a_ring_change_forgets_which_nodes_were_walked():
    topo = Holder(ring_of("s1", "s2", "s3", "s4"))
    epochs = RingEpochs(topo)  # type: ignore[arg-type]
    topo.ring = ring_of("s2", "s3", "s4", epoch=2)
    epochs.old()
    epochs.walked.add("s1")
    topo.ring = ring_of("s2", "s3", "s4", "s5", epoch=3)  # walked towards a ring that is no longer current
    epochs.old()
    assert epochs.walked == set()
