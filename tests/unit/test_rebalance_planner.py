"""Rebalancing moves (metadata.repair.rebalance) on the pure state machine: only what the
ring change displaced moves, one node swapped per move, never below policy at any step;
draining nodes are found through the placement index; the GC side (a copy outside its
placement is an orphan) and the RepairPlacement age guard."""
from __future__ import annotations

import random

from metadata.api import commands as c
from metadata.fsm.references import ORPHAN, REFERENCED, YOUNG, blob_status
from metadata.repair.rebalance import RebalanceState, ring_signature
from tests.unit.test_gc_guard import vid_at as version_id_at
from objstore.ring import Ring
from objstore.types import NodeInfo
from tests.unit.test_fsm import Driver, version

ZONES = ("a", "b", "c")


def loaded(nodes: int = 6, keys: int = 600, policy: str = "replica:3") -> Driver:
    d = Driver()
    for i in range(1, nodes + 1):
        d.run(c.RegisterNode(NodeInfo(f"n{i}", f"127.0.0.1:{7000 + i}", zone=ZONES[(i - 1) % 3])))
    d.run(c.CreateBucket("b", "alice", policy, 1.0))
    width = 6 if policy.startswith("ec") else 3
    ring = Ring(d.fsm.cluster_map())
    for i in range(keys):
        key = f"k{i:05d}"
        d.run(c.PutObject(version(key=key, vid=f"v{i}", size=1000, policy=policy,
                                  placement=tuple(ring.locate("b", key, width)))))
    return d


def placements(d: Driver) -> dict[str, tuple[str, ...]]:
    return {k: d.fsm.objects["b"].get(k).placement for k, _ in d.fsm.objects["b"].versions_from("")}


def settle(d: Driver, state: RebalanceState, rounds: int = 200, walk: bool = True) -> list:
    """Plan and commit moves until nothing is left; check policy after every commit."""
    done = []
    for _ in range(rounds):
        tasks, _ = state.plan(d.fsm, limit=64)
        for t in tasks:
            assert len(t.placement) == len(t.expected) and t.move
            out = d.run(c.RepairPlacement(t.bucket, t.key, t.version_id, t.part, list(t.expected),
                                          list(t.placement), upload_id=t.upload_id))
            assert out.applied
            assert d.fsm.placements.objects_below == 0  # never below policy
            done.append(t)
            state.moved(t, 0.0)
        if not tasks and (state.cursor is None or not walk):
            return done
    raise AssertionError("rebalancing did not settle")


def test_a_balanced_cluster_moves_nothing() -> None:
    d = loaded()
    state = RebalanceState(walk=100)
    assert settle(d, state) == []
    assert state.status(600, 0, 0.0)["balanced"] and state.walks == 1


def test_adding_a_node_moves_only_its_share_one_swap_at_a_time() -> None:
    d = loaded(keys=900)
    state = RebalanceState(walk=128)
    settle(d, state)
    before = placements(d)
    d.run(c.RegisterNode(NodeInfo("n7", "127.0.0.1:7007", zone="a")))
    moves = settle(d, state)
    after = placements(d)
    ring = Ring(d.fsm.cluster_map())
    for k, pl in after.items():
        assert set(pl) == set(ring.locate("b", k, 3))  # the ring's owners now
    changed = sum(len(set(before[k]) - set(after[k])) for k in before)
    assert changed == len(moves)  # each move swaps exactly one copy
    assert all(t.target == "n7" for t in moves)
    fraction = len(moves) / (3 * len(before))
    assert 0.5 / 7 < fraction <= 1.3 / 7, fraction


def test_a_draining_node_is_emptied_from_the_index_without_a_walk() -> None:
    d = loaded(keys=300)
    state = RebalanceState(walk=0)  # no walk: draining keys come from the placement index
    assert d.fsm.placements.by_node.get("n2")
    d.run(c.SetNodeState("n2", "draining"))
    moves = settle(d, state, walk=False)
    assert moves and not d.fsm.placements.by_node.get("n2")
    assert all("n2" in t.expected and "n2" not in t.placement for t in moves)


def test_moves_keep_zones_spread() -> None:
    d = loaded(nodes=6, keys=300)
    state = RebalanceState(walk=512)
    d.run(c.SetNodeState("n1", "draining"))
    settle(d, state)
    zone = {n.node_id: n.zone for n in d.fsm.nodes.values()}
    for pl in placements(d).values():
        assert len({zone[n] for n in pl}) == 3


def test_erasure_coded_slots_move_to_their_owners() -> None:
    d = loaded(nodes=8, keys=120, policy="ec:4+2")
    state = RebalanceState(walk=512)
    d.run(c.RegisterNode(NodeInfo("n9", "127.0.0.1:7009", zone="c")))
    moves = settle(d, state)
    assert moves and all(t.target == "n9" for t in moves)
    ring = Ring(d.fsm.cluster_map())
    for k, pl in placements(d).items():
        assert set(pl) == set(ring.locate("b", k, 6))
    assert all(t.placement[t.shard] == "n9" and t.expected[t.shard] != "n9" for t in moves)
    assert len(moves) <= 1.3 / 9 * 6 * 120  # only n9's share of the shards moved


def test_below_policy_blobs_are_left_to_repair_and_full_targets_get_nothing() -> None:
    d = loaded(keys=200)
    state = RebalanceState(walk=512)
    d.run(c.SetNodeState("n3", "out"))  # its keys are below policy: repair's, not moved
    tasks, _ = state.plan(d.fsm)
    assert all("n3" not in t.expected for t in tasks)
    d2 = loaded(keys=200)
    s2 = RebalanceState(walk=512)
    d2.run(c.RegisterNode(NodeInfo("n7", "127.0.0.1:7007", zone="a")))
    tasks, idle = s2.plan(d2.fsm, free_bytes={"n7": 10})  # no room for a 1000-byte blob
    assert tasks == [] and idle and len(s2.misplaced) == len(idle)


def test_the_walk_restarts_when_the_ring_changes_only() -> None:
    d = loaded(keys=50)
    state = RebalanceState(walk=10)
    settle(d, state)
    sig = ring_signature(d.fsm.cluster_map())
    d.run(c.SetNodeState("n1", "full"))  # not a ring change, but n1 no longer takes blobs
    assert ring_signature(d.fsm.cluster_map()) != sig
    d.run(c.SetNodeState("n1", "up"))
    assert not state.ring_changed(d.fsm.cluster_map())
    d.run(c.SetNodeWeight("n2", 2.0))
    assert state.ring_changed(d.fsm.cluster_map()) and state.cursor == ("", "")


def test_a_copy_outside_its_placement_is_an_orphan_once_old_enough() -> None:
    now = 1_700_000_000.0
    d = Driver()
    for i in range(1, 5):
        d.run(c.RegisterNode(NodeInfo(f"n{i}", f"127.0.0.1:{7000 + i}")))
    d.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    vid = version_id_at(now - 100)
    d.run(c.PutObject(version(key="k", vid=vid, placement=("n1", "n2", "n3"))))
    d.run(c.MarkCollectable(now - 50))
    f = d.fsm
    assert blob_status(f, "b", "k", vid, "n1", now - 90) == REFERENCED
    assert blob_status(f, "b", "k", vid, "n4", now - 90) == ORPHAN  # a stray copy, old enough
    assert blob_status(f, "b", "k", vid, "n4", now - 10) == YOUNG  # a move's copy, not committed yet
    assert blob_status(f, "b", "k", vid) == REFERENCED  # without a node: as before
    # A move whose copy started before the floor cannot commit (it may have been collected).
    old = d.run(c.RepairPlacement("b", "k", vid, 0, ["n1", "n2", "n3"], ["n4", "n2", "n3"], now - 60))
    assert (old.applied, old.reason) == (False, "too-old")
    new = d.run(c.RepairPlacement("b", "k", vid, 0, ["n1", "n2", "n3"], ["n4", "n2", "n3"], now - 10))
    assert new.applied
    assert blob_status(f, "b", "k", vid, "n1", now - 90) == ORPHAN  # the old copy is left to GC
    assert blob_status(f, "b", "k", vid, "n4", now - 10) == REFERENCED


def test_random_ring_changes_settle_with_every_key_at_policy() -> None:
    rng = random.Random(7)
    d = loaded(nodes=6, keys=300)
    state = RebalanceState(walk=64)
    for step in range(4):
        node = f"n{rng.randint(1, 6)}"
        d.run(c.SetNodeWeight(node, rng.choice([0.5, 1.0, 2.0])))
        settle(d, state)
        ring = Ring(d.fsm.cluster_map())
        assert all(set(pl) == set(ring.locate("b", k, 3)) for k, pl in placements(d).items()), step
