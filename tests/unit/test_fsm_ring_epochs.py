"""Ring epochs in the metadata state machine: the rings replaced while manifests may sit
on their owners are kept in the cluster map until a HandOverRings names the ring they went
to, so every gateway consults the same rings (gateway.ring_epochs)."""
from __future__ import annotations

from metadata.api import commands as c
from metadata.fsm.machine import MAX_KEPT_RINGS, MetadataFSM
from objstore.types import ClusterMap, KeptRing, NodeInfo, ObjectVersion, placement_of
from tests.unit.test_fsm import Driver


def cluster(nodes: int = 4, bucket: bool = True) -> Driver:
    d = Driver()
    for i in range(1, nodes + 1):
        d.run(c.RegisterNode(NodeInfo(f"n{i}", f"127.0.0.1:{1000 + i}", zone=f"z{i % 2}")))
    if bucket:
        d.run(c.CreateBucket("b", "alice", "replica:3", 1700000000.0))
    return d


def test_rings_replaced_before_any_bucket_exists_are_not_kept():
    d = cluster(bucket=False)
    m = d.fsm.cluster_map()
    assert m.kept_rings == () and m.ring_epoch == m.epoch == 4  # each registration moved the ring


def test_a_ring_change_keeps_the_replaced_ring_until_it_is_handed_over():
    d = cluster()
    before = d.fsm.cluster_map()
    assert d.run(c.SetNodeState("n2", "down")).kept_rings == ()  # a node down keeps its place in the ring
    m = d.run(c.SetNodeState("n1", "draining"))
    assert m.kept_rings == (KeptRing(before.ring_epoch, placement_of(before.nodes)),)
    assert m.ring_epoch == m.epoch and m.ring_epoch > before.ring_epoch
    assert [n for n, _z, _w in m.kept_rings[0].placement] == ["n1", "n2", "n3", "n4"]
    m2 = d.run(c.SetNodeWeight("n3", 2.0))  # another change: two old rings, newest first
    assert [r.epoch for r in m2.kept_rings] == [m.ring_epoch, before.ring_epoch]
    # A hand-over to the ring in between drops only the older one.
    m3 = d.run(c.HandOverRings(m.ring_epoch))
    assert [r.epoch for r in m3.kept_rings] == [m.ring_epoch] and m3.epoch == m2.epoch + 1
    assert d.run(c.HandOverRings(before.ring_epoch)) == m3  # a ring no longer kept: nothing changes
    m4 = d.run(c.HandOverRings(m3.ring_epoch))
    assert m4.kept_rings == () and m4.epoch == m3.epoch + 1 and m4.ring_epoch == m3.ring_epoch


def test_returning_to_a_kept_placement_makes_it_current_again():
    d = cluster()
    first = d.fsm.cluster_map()
    drained = d.run(c.SetNodeState("n1", "draining"))
    back = d.run(c.SetNodeState("n1", "up"))
    assert back.kept_rings == (KeptRing(drained.ring_epoch, placement_of(drained.nodes)),)
    assert placement_of(back.nodes) == placement_of(first.nodes) and back.ring_epoch == back.epoch


def test_the_rings_kept_are_bounded():
    d = cluster()
    for i in range(MAX_KEPT_RINGS + 3):
        d.run(c.SetNodeWeight("n1", 1.0 + i + 1))
    m = d.fsm.cluster_map()
    assert len(m.kept_rings) == MAX_KEPT_RINGS
    assert [r.epoch for r in m.kept_rings] == sorted((r.epoch for r in m.kept_rings), reverse=True)


def test_object_writes_report_the_map_epoch_they_applied_at():
    d = cluster()
    v = ObjectVersion(bucket="b", key="k", version_id="v1", size=1, etag="0" * 32, last_modified=1.0,
                      placement=("n1", "n2", "n3"), owner="alice")
    assert d.run(c.PutObject(v)).map_epoch == d.fsm.epoch
    moved = d.run(c.SetNodeState("n4", "draining")).epoch
    assert d.run(c.DeleteObject("b", "k")).map_epoch == moved


def test_kept_rings_survive_a_snapshot_and_the_wire():
    d = cluster()
    d.run(c.SetNodeState("n1", "draining"))
    restored = Driver(MetadataFSM.restore(d.fsm.snapshot()))
    assert restored.fsm.cluster_map() == d.fsm.cluster_map()
    assert ClusterMap.from_dict(d.fsm.cluster_map().to_dict()) == d.fsm.cluster_map()
    # The restored machine knows its current placement: the next change keeps it.
    for drv in (d, restored):
        drv.run(c.SetNodeState("n2", "draining"))
    assert restored.fsm.cluster_map() == d.fsm.cluster_map() and len(d.fsm.kept_rings) == 2
