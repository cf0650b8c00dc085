"""The leader's repair service over a local state machine (a replicator stand-in that applies
commands in order): leases plan first, commits go through RepairPlacement, progress and
ETA, and report validation."""
from __future__ import annotations

import asyncio

import pytest

from metadata.api import commands as c
from metadata.repair.service import RepairService
from objstore.repair_records import DamageReport
from tests.unit.test_fsm import Driver, version
from tests.unit.test_placement_index import d, multipart  # noqa: F401 - the fixture


class LocalReplicator:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    async def propose(self, cmd):
        return self.driver.outcome(cmd)

    async def read(self, fn):
        return fn(self.driver.fsm)

    def is_leader(self) -> bool:
        return True


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lease_commit_and_status(d):
    d.run(c.PutObject(version(key="a", size=1000, placement=("n1", "n2", "n3"))))
    d.run(c.SetNodeState("n1", "out"))
    clock = Clock()
    svc = RepairService(LocalReplicator(d), "secret", clock=clock)

    async def go():
        st = await svc.status()
        assert (st["objects_below_policy"], st["bytes_below_policy"], st["eta_seconds"]) == (1, 1000, None)
        target = (await svc.lease("nobody", 4)) or None
        assert target is None  # planned, but not for this node
        (task,) = svc.queue.lease(next(iter(svc.queue.tasks.values())).task.target, 4, clock())
        clock.now += 2
        outcome = await svc.commit(task, ok=True)
        assert outcome.applied
        assert d.fsm.get_object("b", "a").placement == task.placement
        st = await svc.status()
        assert st["objects_below_policy"] == 0 and st["repaired_objects"] == 1 and st["in_flight"] == 0
        assert st["rate_bytes_per_second"] > 0
        again = await svc.commit(task, ok=True)  # a retried commit changes nothing
        assert not again.applied and again.reason == "stale"

    asyncio.run(go())


def test_report_validation():
    ok = DamageReport.from_dict({"bucket": "b", "key": "k", "version_id": "v", "node_id": "n1", "part": 0,
                                 "shard": -1, "reason": "corrupt"})
    assert ok.reason == "corrupt" and DamageReport.from_dict(ok.to_dict()) == ok
    for bad in ({"bucket": "b", "key": "k", "version_id": "v", "node_id": "n1", "reason": "gone"},
                {"bucket": "b", "key": 1, "version_id": "v", "node_id": "n1"},
                {"bucket": "b", "key": "k", "version_id": "v", "node_id": "n1", "part": True}, []):
        with pytest.raises(ValueError):
            DamageReport.from_dict(bad)


def test_a_report_for_a_copy_no_record_places_there_is_not_verified(d):
    d.run(c.PutObject(version(key="a", placement=("n1", "n2", "n3"))))
    svc = RepairService(LocalReplicator(d), "secret")
    # n5 holds no copy of it: nothing to verify, nothing marked damaged (no network call made)
    assert asyncio.run(svc.verify(DamageReport("b", "a", "v1", "n5"))) is False
    assert asyncio.run(svc.verify(DamageReport("b", "zz", "v1", "n1"))) is False


def test_a_part_reported_by_its_own_version_id_resolves_to_its_object_and_part(d):
    """A node knows a multipart part only by its blob's version id and sends part 0, shard -1
    (a replica): the leader finds the part, so the damage counts against that part."""
    d.run(c.PutObject(multipart("m", [("n1", "n2", "n3"), ("n2", "n3", "n4")])))
    svc = RepairService(LocalReplicator(d), "secret")
    part2 = multipart("m", [(), ()]).parts[1]
    report = DamageReport("b", "m", part2.version_id, "n4", part=0, shard=-1, reason="corrupt")
    where = svc._where(d.fsm, report)
    assert where is not None
    _, shard, blob_id, resolved = where
    assert (shard, blob_id) == (0, part2.version_id)
    assert (resolved.version_id, resolved.part, resolved.node_id) == ("mp1", 2, "n4")
    assert svc._where(d.fsm, DamageReport("b", "m", part2.version_id, "n1")) is None  # n1 holds only part 1
    own = svc._where(d.fsm, DamageReport("b", "m", "mp1", "n1", part=1))
    assert own is not None and own[3].part == 1


def test_a_ring_change_ends_the_pass_over_of_keys_that_gave_no_task(d):
    """A key with no target (every node full) is passed over; a node added to the ring
    may be its target, so the next planning takes it at once, not after the window."""
    from metadata.repair.queue import IDLE_SECONDS
    from objstore.types import NodeInfo

    d.run(c.PutObject(version(key="a", size=1000, placement=("n1", "n2"))))  # below replica:3
    clock = Clock()
    free = {f"n{i}": 0 for i in range(1, 9)}
    svc = RepairService(LocalReplicator(d), "secret", clock=clock, free_bytes=lambda: free)

    async def go():
        await svc.plan_if_due()
        assert not svc.queue.tasks and ("b", "a") in svc.queue.passed_over(clock())
        d.run(c.RegisterNode(NodeInfo("n9", "127.0.0.1:7009")))
        clock.now += 1  # well inside the pass-over window
        assert clock.now - 100.0 < IDLE_SECONDS
        await svc.plan_if_due()
        (task,) = [x.task for x in svc.queue.tasks.values()]
        assert task.target == "n9" and task.key == "a"

    asyncio.run(go())


class FollowerReplicator(LocalReplicator):
    """A metadata member that is not the leader: every read and write answers NotLeader."""

    def is_leader(self) -> bool:
        return False

    def not_leader(self):
        from objstore.errors import NotLeader
        return NotLeader("not the leader", leader="leader-address")

    async def propose(self, cmd):
        raise self.not_leader()

    async def read(self, fn):
        raise self.not_leader()


def test_a_follower_never_answers_a_lease_or_a_commit(d):
    """A follower's queue is empty: an answer from it ("no tasks", "failed noted") would be
    taken by a worker for the leader's, so it answers NotLeader every time, planning due or not."""
    from objstore.errors import NotLeader

    d.run(c.PutObject(version(key="a", size=1000, placement=("n1", "n2"))))  # below replica:3
    clock = Clock()
    leader = RepairService(LocalReplicator(d), "secret", clock=clock)
    follower = RepairService(FollowerReplicator(d), "secret", clock=clock)

    async def go():
        for _ in range(3):  # the first call is due to plan, the next ones are not
            with pytest.raises(NotLeader):
                await follower.lease("n3", 4)
            clock.now += 0.1
        (task,) = [t for n in ("n3", "n4", "n5", "n6", "n7", "n8") for t in await leader.lease(n, 4)]
        with pytest.raises(NotLeader):
            await follower.commit(task, ok=False)
        assert leader.queue.tasks[task.blob_key].leased  # the leader still holds it

    asyncio.run(go())


def grown_cluster() -> tuple[Driver, int]:
    """replica:2 on three nodes, 40 keys at their ring owners, then a fourth node added;
    and how many keys the fourth node owns now (each one move)."""
    from objstore.ring import Ring
    from objstore.types import NodeInfo

    drv = Driver()
    for i in range(1, 4):
        drv.run(c.RegisterNode(NodeInfo(f"n{i}", f"127.0.0.1:{7000 + i}")))
    drv.run(c.CreateBucket("b", "alice", "replica:2", 1.0))
    ring = Ring(drv.fsm.cluster_map())
    keys = [f"obj/{i:04d}" for i in range(40)]
    for i, k in enumerate(keys):
        drv.run(c.PutObject(version(key=k, vid=f"v{i}", size=40_000, policy="replica:2",
                                    placement=tuple(ring.locate("b", k, 2)))))
    drv.run(c.RegisterNode(NodeInfo("n4", "127.0.0.1:7004")))
    owners = Ring(drv.fsm.cluster_map())
    to_move = sum(1 for k in keys if "n4" in owners.locate("b", k, 2))
    assert to_move >= 10
    return drv, to_move


async def run_workers(members: list[RepairService], clock: Clock, seconds: float,
                      copy_ok=lambda task, now: True) -> None:
    """The workers of n1..n4 on the fake clock: each asks ``members`` in turn (following
    NotLeader, as objstore.node.register.call_leader does) every second when idle; n4's,
    the only one with tasks, also as soon as one of its ``LEASE_MAX`` slots frees. A copy
    takes 0.2 s and succeeds when ``copy_ok(task, now)``; its result is committed."""
    from objstore.errors import NotLeader
    from objstore.node.repair_worker import LEASE_MAX

    async def call(fn):
        for m in members:
            try:
                return await fn(m)
            except NotLeader:
                continue
        raise AssertionError("no member answered")

    running: list[tuple[float, object]] = []  # (copy done at, task): n4's worker
    next_poll = {f"n{i}": clock.now for i in range(1, 5)}
    end = clock.now + seconds
    while clock.now < end:
        finished = [r for r in running if r[0] <= clock.now]
        for r in finished:
            running.remove(r)
            ok = copy_ok(r[1], clock.now)
            outcome = await call(lambda m, r=r, ok=ok: m.commit(r[1], ok=ok))
            assert outcome.applied == ok
        if finished:  # a slot freed: n4's worker leases again at once
            next_poll["n4"] = clock.now
        for node, due in next_poll.items():  # the other workers have nothing to do and poll
            if clock.now >= due and (node != "n4" or len(running) < LEASE_MAX):
                want = LEASE_MAX - len(running) if node == "n4" else LEASE_MAX
                got = await call(lambda m, node=node, want=want: m.lease(node, want))
                running += [(clock.now + 0.2, t) for t in got]
                next_poll[node] = clock.now + 1.0
        clock.now = round(clock.now + 0.05, 2)


def test_moves_to_an_added_node_flow_while_the_leader_is_not_the_first_member_asked():
    """Every storage node's worker asks a follower first: the moves to the added node go
    at the workers' pace (leased as soon as asked), not at the pace of the polls that
    happen to reach the leader (before: none in ten seconds)."""
    drv, to_move = grown_cluster()
    clock = Clock()
    leader = RepairService(LocalReplicator(drv), "secret", clock=clock)
    follower = RepairService(FollowerReplicator(drv), "secret", clock=clock)
    asyncio.run(run_workers([follower, leader], clock, 10.0))
    assert leader.rebalance.moved_objects == to_move


def test_moves_whose_first_copies_failed_are_retried_within_seconds():
    """The first copies fail (their sources restarted on new addresses and are not yet
    heartbeating): the moves are offered again after a few seconds (a move has only its
    ring owner as target), not after the one-minute cap of the failure pass-over nor the
    10 s pass-over of keys that gave no task."""
    from metadata.repair.queue import FAILED_FIRST_SECONDS, IDLE_SECONDS

    drv, to_move = grown_cluster()
    clock = Clock()
    leader = RepairService(LocalReplicator(drv), "secret", clock=clock)
    start = clock.now
    seconds = FAILED_FIRST_SECONDS + 4.0
    assert seconds < IDLE_SECONDS
    asyncio.run(run_workers([leader], clock, seconds, copy_ok=lambda task, now: now >= start + 1.0))
    assert leader.queue.failures >= 12  # three rounds of four copies failed
    assert leader.rebalance.moved_objects == to_move


def test_the_walk_of_a_lost_nodes_upload_parts_is_kept_between_planning_rounds(d):
    """The leader keeps where the walk of lost nodes' parts of uploads in progress stopped
    (metadata.repair.part_walk), so the next round resumes there."""
    from metadata.api.upload_records import MultipartUpload, UploadedPart
    from objstore.types import PartRef

    d.run(c.CreateMultipartUpload(MultipartUpload("b", "big", "u1", initiated=1.0, owner="alice", policy="replica:3")))
    for n in (1, 2):
        ref = PartRef(n, f"{n:016x}-gw", 100, "0" * 32, ("n1", "n2", "n3"))
        d.run(c.PutPart("b", "big", "u1", UploadedPart(ref, 1.0)))
    d.run(c.SetNodeState("n1", "out"))
    svc = RepairService(LocalReplicator(d), "secret", clock=Clock())
    assert svc.queue.part_walk.at is None
    asyncio.run(svc.plan_if_due())
    assert {x.task.part for x in svc.queue.tasks.values()} == {1, 2}
    assert svc.queue.part_walk.at == ("n1", ("b", "big", "u1"), 2)


def test_a_commit_of_a_task_with_mistyped_fields_is_refused_before_it_is_proposed(d):
    """The task of a commit comes from a storage node's JSON; its fields become the
    RepairPlacement's, which followers and restart replay apply without re-checking field
    types: a bucket that is not a string would stop every replica (unhashable), so the
    command is checked before it is proposed."""
    from metadata.api.commands import decode_logged_command, encode_command
    from objstore.errors import InvalidArgument
    from objstore.repair_records import RepairTask

    d.run(c.PutObject(version(key="a", size=1000, placement=("n1", "n2", "n3"))))
    proposed: list[c.Command] = []

    class Recording(LocalReplicator):
        async def propose(self, cmd):
            proposed.append(cmd)
            return await super().propose(cmd)

    svc = RepairService(Recording(d), "secret", clock=Clock())
    good = {"task_id": "t", "bucket": "b", "key": "a", "version_id": "v1", "part": 0, "policy": "replica:3",
            "size": 1000, "shard": 0, "target": "n4", "expected": ["n1", "n2", "n3"],
            "placement": ["n4", "n2", "n3"]}
    for bad in ({"bucket": ["b"]}, {"key": {"a": 1}}, {"version_id": 7}):
        task = RepairTask.from_dict({**good, **bad})
        cmd = c.RepairPlacement(task.bucket, task.key, task.version_id, task.part, list(task.expected),
                                list(task.placement), upload_id=task.upload_id)
        if "bucket" in bad:  # what a follower would have done with it
            with pytest.raises(TypeError):
                Driver().fsm.apply(1, decode_logged_command(encode_command(cmd)))
        with pytest.raises(InvalidArgument):
            asyncio.run(svc.commit(task, ok=True))
    assert proposed == []
    assert asyncio.run(svc.commit(RepairTask.from_dict(good), ok=True)).applied
    assert len(proposed) == 1
