"""Catching up from the leader: a follower far behind gets an InstallSnapshot, and so
does a follower whose log was corrupted while it was down and whose lost part the leader
has compacted away; with a majority corrupt, writes stop until an operator decides.
Small snapshot intervals and log segments make compaction fast."""
from __future__ import annotations

import pytest

from objstore.errors import ServiceUnavailable
from objstore.types import Credential
from tests.harness.eventually import eventually_async
from tests.integration.test_metadata_raft_harness import (
    corrupt_middle,
    group_fixture,
    reads_through,
    write_credentials,
)

pytestmark = pytest.mark.integration


group = group_fixture("raft-recovery", extra=("--snapshot-every", "100", "--log-segment-bytes", "8192"))


async def test_a_follower_far_behind_catches_up_by_install_snapshot(group):
    await write_credentials(group, "warm", 20)
    leader = await group.leader()
    behind = next(m for m in group.members.values() if m is not leader)
    last_before = (await group.status(behind))["log_last_index"]
    behind.kill()
    await write_credentials(group, "behind", 300)
    lead_st = await group.status(leader)
    assert lead_st["log_first_index"] > last_before + 1  # the entries it needs are compacted away
    group.restart(behind)
    sts = await group.wait_converged(timeout=30)
    assert sts[behind.id]["snapshots_installed"] >= 1
    assert (await group.status(leader))["snapshots_sent"] >= 1
    keys = await reads_through(group, behind)
    assert {f"behind-{i}" for i in range(300)} <= keys


async def test_a_corrupt_log_behind_the_compaction_point_is_refetched_by_snapshot(group):
    leader = await group.leader()
    victim = max((m for m in group.members.values() if m is not leader),
                 key=lambda m: len(list((m.data_dir / "raft" / "log").iterdir())))
    await write_credentials(group, "pre-corrupt", 50)
    installed = (await group.status(victim))["snapshots_installed"]
    victim.kill()
    corrupt_middle(victim.data_dir / "raft" / "log")
    await write_credentials(group, "while-down", 150)
    group.restart(victim)
    sts = await group.wait_converged(timeout=30)
    assert "raft log damaged" in victim.output()
    assert sts[victim.id]["snapshots_installed"] > installed
    await eventually_async(lambda: "it votes again" in victim.output(), 15, message="the repaired member to trust itself again")
    st = await group.status(victim)
    assert st["recovering_until"] == 0
    keys = await reads_through(group, victim)
    assert {f"pre-corrupt-{i}" for i in range(50)} | {f"while-down-{i}" for i in range(150)} <= keys


async def test_with_a_majority_corrupt_writes_stop_until_an_operator_accepts_the_risk(group):
    """Two of three members lose part of their logs while down (the leader, alone, steps
    down): they do not vote, so no leader can be elected and the group answers 503
    rather than serve a state that may miss acknowledged writes. The operator's way out:
    stop the group, delete the damaged members' `recovering` markers, start the intact
    member with one damaged member (only the intact log can win that election), then the
    rest; the new leader repairs them and nothing acknowledged is lost."""
    await write_credentials(group, "majority", 60)
    leader = await group.leader()
    damaged = [m for m in group.members.values() if m is not leader]
    for m in damaged:
        m.kill()
        corrupt_middle(m.data_dir / "raft" / "log")

    async def stepped_down() -> bool:
        return (await group.status(leader))["role"] != "leader"

    await eventually_async(stepped_down, 10, message="the lone leader to step down (check-quorum)")
    for m in damaged:
        m.start(m.argv)
    for m in damaged:
        group.wait_healthy(m)
        await eventually_async(lambda m=m: "raft log damaged" in m.output(), 10, message=f"{m.id} to find the damage")
    async with group.client(deadline=1) as c:
        with pytest.raises(ServiceUnavailable):
            await c.put_credential(Credential("unsafe-write", "s", "owner"))
        with pytest.raises(ServiceUnavailable):
            await c.list_credentials()
    sts = await group.statuses()
    assert all(sts[m.id]["recovering_until"] > 0 for m in damaged)
    assert all(s["role"] != "leader" for s in sts.values())

    for m in group.members.values():
        m.kill()
    for m in damaged:
        (m.data_dir / "raft" / "recovering").unlink()
    for m in (leader, damaged[0]):
        m.start(m.argv)
    for m in (leader, damaged[0]):  # the election's time starts once both listen (a loaded start takes seconds)
        group.wait_healthy(m)
    assert (await group.leader([leader, damaged[0]], timeout=15)) is leader
    damaged[1].start(damaged[1].argv)
    group.wait_healthy(damaged[1])
    await group.wait_converged(timeout=30)
    async with group.client() as c:
        await c.put_credential(Credential("after-repair", "s", "owner"))
        assert {f"majority-{i}" for i in range(60)} <= {cr.access_key for cr in await c.list_credentials()}
