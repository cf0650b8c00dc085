"""The repair planner (pure) and the leader's repair queue (leases, outcomes)."""
from __future__ import annotations

import dataclasses

from metadata.api import commands as c
from metadata.repair.planner import plan, ring_of
from metadata.repair.queue import RepairQueue
from objstore.repair_records import DamageReport
from objstore.ring import Ring
from tests.unit.test_fsm import version
from tests.unit.test_placement_index import d, multipart  # noqa: F401 - the fixture


def test_fewest_survivors_first_and_targets_are_writable_newcomers(d):
    d.run(c.PutObject(version(key="one-lost", placement=("n1", "n2", "n3"))))
    d.run(c.PutObject(version(key="two-lost", placement=("n1", "n4", "n5"))))
    d.run(c.PutObject(version(key="fine", placement=("n6", "n7", "n8"))))
    d.run(c.SetNodeState("n1", "out"))
    d.run(c.SetNodeState("n4", "out"))
    d.run(c.SetNodeState("n6", "full"))
    tasks = plan(d.fsm)
    assert [t.key for t in tasks] == ["two-lost", "one-lost"]
    two, one = tasks
    assert two.spare == 0 and one.spare == 1
    assert two.expected == ("n1", "n4", "n5") and two.placement == ("n5", two.target)
    assert [s.node_id for s in two.sources] == ["n5"] and two.shard == 0
    for t in tasks:
        assert t.target not in {"n1", "n4", "n6"} | set(t.expected)  # writable, holds no copy
    ring = Ring(d.fsm.cluster_map())
    order = ring.locate("b", "one-lost", 3) + ring.locate_extra("b", "one-lost", 3)
    eligible = [n for n in order if n not in {"n1", "n2", "n3", "n4", "n6"}]
    assert one.target == eligible[0]  # the first eligible node in ring order


def test_busy_blobs_unreadable_blobs_and_full_targets_are_skipped(d):
    d.run(c.PutObject(version(key="a", size=1000, placement=("n1", "n2"))))
    d.run(c.PutObject(version(key="gone", placement=("n3",))))
    d.run(c.SetNodeState("n3", "out"))
    assert [t.key for t in plan(d.fsm)] == ["a"]  # "gone" has no survivor
    assert plan(d.fsm, busy={("b", "a", "v1", 0)}) == []
    others = {f"n{i}": 10 for i in range(3, 9)}
    assert plan(d.fsm, free_bytes=others) == []  # no node has room for 1000 bytes
    roomy = {**others, "n7": 10**6}
    assert plan(d.fsm, free_bytes=roomy)[0].target == "n7"
    assert plan(d.fsm, failed={("b", "a", "v1", 0): {"n7"}}, free_bytes={**roomy, "n8": 10**6})[0].target == "n8"


def test_a_round_sends_a_target_no_more_than_its_free_space(d):
    for key in ("a", "b2", "c", "d"):
        d.run(c.PutObject(version(key=key, size=1000, placement=("n1", "n2", "n3"))))
    d.run(c.SetNodeState("n1", "out"))
    room = {**{f"n{i}": 0 for i in range(2, 9)}, "n7": 2500}  # room for two copies, on n7 only
    tasks = plan(d.fsm, free_bytes=room)
    assert len(tasks) == 2 and {t.target for t in tasks} == {"n7"}


def test_ec_fills_the_missing_slot_from_the_survivors(d):
    pol = "ec:4+2;stripe=1048576"
    d.run(c.PutObject(version(bucket="e", key="a", size=5000, policy=pol,
                              placement=("n1", "n2", "n3", "n4", "n5", "n6"))))
    d.run(c.SetNodeState("n3", "out"))
    (t,) = plan(d.fsm)
    assert t.shard == 2 and t.policy == pol
    assert [(s.node_id, s.shard) for s in t.sources] == [("n1", 0), ("n2", 1), ("n4", 3), ("n5", 4), ("n6", 5)]
    assert t.placement[:2] == ("n1", "n2") and t.placement[3:] == ("n4", "n5", "n6")
    assert t.target in {"n7", "n8"} and t.placement[2] == t.target


def test_a_verified_damaged_copy_is_replaced(d):
    d.run(c.PutObject(version(key="a", placement=("n1", "n2", "n3"))))
    assert plan(d.fsm) == []
    damaged = {("b", "a", "v1", 0): {"n2"}}
    (t,) = plan(d.fsm, reported=[("b", "a")], damaged=damaged)
    assert t.placement == ("n1", "n3", "n2") and t.target == "n2"  # rewritten in place
    (t,) = plan(d.fsm, reported=[("b", "a")], damaged=damaged, failed={("b", "a", "v1", 0): {"n2"}})
    assert t.placement[:2] == ("n1", "n3") and t.target not in {"n1", "n2", "n3"}
    d.run(c.SetNodeState("n2", "full"))  # no new blobs there: the copy goes elsewhere
    (t,) = plan(d.fsm, reported=[("b", "a")], damaged=damaged)
    assert t.placement[:2] == ("n1", "n3") and t.target not in {"n1", "n2", "n3"}


def test_a_damaged_ec_shard_is_rewritten_in_its_slot(d):
    slots = ("n1", "n2", "n3", "n4", "n5", "n6")
    d.run(c.PutObject(version(bucket="e", key="a", size=4096, policy="ec:4+2", placement=slots)))
    d.run(c.SetNodeState("n1", "out"))
    (t,) = plan(d.fsm, reported=[("e", "a")], damaged={("e", "a", "v1", 0): {"n4"}})
    assert (t.target, t.shard) == ("n4", 3) and t.placement == ("", "n2", "n3", "n4", "n5", "n6")


def test_parts_are_planned_with_their_blob_id(d):
    d.run(c.PutObject(multipart("m", [("n1", "n2", "n3"), ("n4", "n5", "n6")])))
    d.run(c.SetNodeState("n5", "out"))
    (t,) = plan(d.fsm)
    assert (t.version_id, t.part, t.blob) == ("mp1", 2, f"{1:016x}-gw")
    assert t.placement[:2] == ("n4", "n6")


def test_queue_leases_expire_and_outcomes_count(d):
    d.run(c.PutObject(version(key="a", size=7, placement=("n1", "n2"))))
    q = RepairQueue(lease_seconds=10)
    (t,) = plan(d.fsm)
    q.replace_planned([t], {t.target}, now=0)
    q.replace_planned(plan(d.fsm, busy=q.busy()), {t.target}, now=0)
    assert len(q.tasks) == 1  # one task per blob
    assert q.lease("someone-else", 5, now=0) == []
    assert q.lease(t.target, 5, now=0) == [t]
    assert q.lease(t.target, 5, now=5) == []  # leased
    assert q.lease(t.target, 5, now=11) == [t]  # lease ran out: handed out again
    q.finished(t, True, "", now=12)
    assert q.status(12)["repaired_objects"] == 1 and q.status(12)["repaired_bytes"] == 7 and not q.tasks
    q.replace_planned([t], set(), now=20)
    q.replace_planned([], set(), now=20)
    assert not q.tasks  # its target is no longer writable
    q.mark_damaged(DamageReport("b", "a", "v1", "n2"))
    assert q.damaged[("b", "a", "v1", 0)] == {"n2"} and ("b", "a") in q.reported


def test_a_task_no_worker_claims_is_planned_for_another_node(d):
    d.run(c.PutObject(version(key="a", size=7, placement=("n1", "n2"))))
    q = RepairQueue(lease_seconds=10, unclaimed_seconds=60)
    (t,) = plan(d.fsm)
    writable = {f"n{i}" for i in range(1, 9)}
    q.replace_planned([t], writable, now=0)
    q.replace_planned([], writable, now=61)
    assert not q.tasks and q.failed[t.blob_key] == {t.target}
    (again,) = plan(d.fsm, busy=q.busy(), failed=q.failed)
    assert again.target != t.target


def test_keys_that_give_no_task_do_not_hide_the_others(d):
    from metadata.repair.planner import plan_round

    for i in range(5):
        d.run(c.PutObject(version(key=f"gone{i}", placement=("n1",))))  # nothing left to copy from
    d.run(c.PutObject(version(key="fixable", placement=("n2", "n3"))))
    d.run(c.SetNodeState("n1", "out"))
    gone = {("b", f"gone{i}") for i in range(5)}
    assert set(list(d.fsm.placements.below_keys())[-5:]) == gone  # unreadable last
    d.run(c.PutObject(version(key="nowhere", placement=("n2", "n3"))))
    tasks, idle = plan_round(d.fsm, scan=2, free_bytes={f"n{i}": 0 for i in range(1, 9)})
    assert tasks == [] and set(idle) == {("b", "fixable"), ("b", "nowhere")}  # no node has room
    tasks, idle = plan_round(d.fsm, scan=2, skip=set(idle))
    assert tasks == [] and len(idle) == 2 and set(idle) < gone
    q = RepairQueue()
    q.gave_nothing(idle, now=0)
    assert q.passed_over(now=9) == set(idle) and q.passed_over(now=11) == set()
    q.gave_nothing(idle, now=20)
    q.forget_passed_over()  # the ring changed
    assert q.passed_over(now=21) == set()


def test_a_busy_target_keeps_its_backlog_and_a_failure_is_retried_later(d):
    """A target leasing steadily keeps tasks that waited past ``unclaimed_seconds`` in its
    queue (a long drain on a slow node is a backlog, not a dead worker); a blob a target
    failed goes back to it after ``FAILED_FIRST_SECONDS`` (a move has no other owner),
    twice as long after each further failure, at most ``FAILED_SECONDS``."""
    from metadata.repair.queue import FAILED_FIRST_SECONDS, FAILED_SECONDS

    for i in range(3):
        d.run(c.PutObject(version(key=f"a{i}", size=7, placement=("n1", "n2"))))
    q = RepairQueue(lease_seconds=10, unclaimed_seconds=60)
    writable = {f"n{i}" for i in range(1, 9)}
    tasks = plan(d.fsm)
    target = tasks[0].target
    mine = [t for t in tasks if t.target == target]
    q.replace_planned(mine, writable, now=0)
    assert len(mine) >= 2 and q.lease(target, 1, now=50) == mine[:1]
    q.replace_planned([], writable, now=100)  # its other tasks waited 100 s: the target is busy, not gone
    assert len(q.tasks) == len(mine) and not q.failed

    def passed_over_for(now: float) -> float:
        """Fail the blob at ``now``; how long it is then passed over (to 0.1 s)."""
        q.finished(mine[0], False, "failed", now)
        assert q.failed == {mine[0].blob_key: {target}}
        t = now
        while mine[0].blob_key in q.failed:
            t = round(t + 0.1, 1)
            q.lease(target, 0, now=t)  # the worker asks again (all its slots busy: none)
            q.replace_planned([], writable, now=t)
        return round(t - now, 1)

    waits = [passed_over_for(100 + 100 * i) for i in range(7)]
    assert waits == [min(FAILED_FIRST_SECONDS * 2 ** i, FAILED_SECONDS) for i in range(7)]
    assert waits[0] < 5 and waits[-1] == FAILED_SECONDS
    assert len(q.tasks) == len(mine) - 1
    (again,) = [t for t in plan(d.fsm, busy=q.busy(), failed=q.failed) if t.blob_key == mine[0].blob_key]
    assert again.target == target
    q.finished(mine[0], False, "stale", 900)  # any other outcome ends the run of failures
    assert passed_over_for(1000) == FAILED_FIRST_SECONDS


def test_the_ring_is_built_once_per_distinct_cluster_map(d):
    cmap = d.fsm.cluster_map()
    ring = ring_of(cmap)
    assert ring_of(cmap) is ring
    assert ring_of(dataclasses.replace(cmap, nodes=tuple(cmap.nodes))) is ring  # an equal map
    d.run(c.SetNodeState("n1", "out"))
    changed = ring_of(d.fsm.cluster_map())
    assert changed is not ring and "n1" not in changed
    assert changed.node_ids == Ring(d.fsm.cluster_map()).node_ids
    assert ring_of(cmap) is not changed and "n1" in ring_of(cmap)
