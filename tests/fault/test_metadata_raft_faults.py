"""Faults of a 3-member Raft metadata group of real processes: a killed leader, an isolated
leader, a lost majority, every member killed at once, and a follower whose log was
corrupted while it was down. Each test leaves the group whole."""
from __future__ import annotations

import asyncio
import time

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

ELECTION_LIMIT = 3.0


group = group_fixture("raft-faults")


async def test_sigkill_of_the_leader_elects_another_within_3s_and_loses_no_acknowledged_write(group):
    leader = await group.leader()
    term = (await group.status(leader))["term"]
    survivors = [m for m in group.members.values() if m is not leader]
    acked: list[str] = []
    stop = asyncio.Event()
    async with group.client(deadline=20) as c:
        async def writer(w: int) -> None:
            i = 0
            while not stop.is_set():
                key = f"kill-{w}-{i}"
                await c.put_credential(Credential(key, "s", "owner"))
                acked.append(key)
                i += 1

        tasks = [asyncio.create_task(writer(w)) for w in range(4)]
        try:
            await eventually_async(lambda: len(acked) >= 80, 20, message="writes before the kill")
            t0 = time.monotonic()
            leader.kill()
            new = await group.leader(survivors, timeout=10, min_term=term)
            elapsed = time.monotonic() - t0
            n = len(acked)
            await eventually_async(lambda: len(acked) >= n + 80, 20, message="writes after the election")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    print(f"\nnew leader {new.id} {elapsed:.2f}s after SIGKILL of leader {leader.id}")
    assert elapsed < ELECTION_LIMIT
    async with group.client(survivors) as c:
        keys = {cr.access_key for cr in await c.list_credentials()}
    assert set(acked) <= keys
    group.restart(leader)  # the killed member comes back and catches up
    sts = await group.wait_converged()
    assert len({s["credentials"] for s in sts.values()}) == 1


async def test_an_isolated_leader_cannot_commit_and_catches_up_when_healed(group):
    leader = await group.leader()
    term = (await group.status(leader))["term"]
    others = [m for m in group.members.values() if m is not leader]
    await group.isolate(leader)
    try:
        # Its clients get NotLeader/503 (the client's ServiceUnavailable), never a success.
        async with group.client([leader], deadline=3) as c:
            with pytest.raises(ServiceUnavailable):
                await c.put_credential(Credential("minority-write", "s", "owner"))
        new = await group.leader(others, min_term=term)
        async with group.client(others) as c:
            await c.put_credential(Credential("majority-write", "s", "owner"))
        st = await group.status(leader)
        assert st["role"] != "leader"  # check-quorum: it stepped down on its own
    finally:
        await group.heal()
    await group.wait_converged()
    assert (await group.status(leader))["leader"] == new.id
    async with group.client() as c:
        assert await c.get_credential("majority-write") is not None
        assert await c.get_credential("minority-write") is None


async def test_without_a_majority_clients_get_service_unavailable(group):
    leader = await group.leader()
    followers = [m for m in group.members.values() if m is not leader]
    for m in followers:
        m.kill()
    try:
        async with group.client(deadline=1.5) as c:
            t0 = time.monotonic()
            with pytest.raises(ServiceUnavailable):
                await c.put_credential(Credential("no-majority", "s", "owner"))
            with pytest.raises(ServiceUnavailable):
                await c.list_credentials()
            assert time.monotonic() - t0 < 6
    finally:
        for m in followers:
            m.start(m.argv)
        for m in followers:
            group.wait_healthy(m)
    await group.leader()
    await group.wait_converged()


async def test_every_member_killed_and_restarted_keeps_the_state(group):
    async with group.client() as c:
        for i in range(30):
            await c.put_credential(Credential(f"restart-{i}", f"s{i}", "owner"))
        before = {cr.access_key: cr.secret_key for cr in await c.list_credentials()}
    for m in group.members.values():
        m.kill()
    for m in group.members.values():
        m.start(m.argv)
    for m in group.members.values():
        group.wait_healthy(m)
    await group.leader(timeout=15)
    async with group.client() as c:
        after = {cr.access_key: cr.secret_key for cr in await c.list_credentials()}
    assert after == before
    await group.wait_converged()


async def test_a_follower_with_a_corrupt_log_discards_the_damage_and_catches_up(group):
    """No compaction here: the lost entries come back by log replication (the leader, which
    believed the follower held them, hands over to a leader that probes afresh)."""
    leader = await group.leader()
    victim = next(m for m in group.members.values() if m is not leader)
    await write_credentials(group, "pre-corrupt", 40)
    victim.kill()
    corrupt_middle(victim.data_dir / "raft" / "log")
    await write_credentials(group, "while-down", 40)
    group.restart(victim)
    sts = await group.wait_converged(timeout=30)
    assert "raft log damaged" in victim.output()
    assert sts[victim.id]["snapshots_installed"] == 0
    await eventually_async(lambda: "it votes again" in victim.output(), 15, message="the repaired member to trust itself again")
    assert (await group.status(victim))["recovering_until"] == 0
    keys = await reads_through(group, victim)
    assert {f"pre-corrupt-{i}" for i in range(40)} | {f"while-down-{i}" for i in range(40)} <= keys


async def test_a_follower_catches_up_on_megabytes_of_entries(group):
    """Catch-up traffic comes in APP batches of up to a megabyte of entries each."""
    leader = await group.leader()
    behind = next(m for m in group.members.values() if m is not leader)
    behind.kill()
    big = "x" * 60_000
    async with group.client() as c:
        for i in range(50):  # 3 MB of entries the follower misses
            await c.put_credential(Credential(f"big-{i}", big, "owner"))
    group.restart(behind)
    sts = await group.wait_converged(timeout=30)
    assert sts[behind.id]["snapshots_installed"] == 0  # by log replication, not a snapshot
    assert sts[behind.id]["credentials"] == sts[leader.id]["credentials"]
