"""A 3-member Raft metadata group of real processes: replication, redirects, reads, bad RPCs."""
from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import aiohttp
import pytest
from yarl import URL

from objstore import internal_auth
from objstore.errors import InvalidArgument, NotLeader
from objstore.types import Credential
from tests.integration.test_metadata_raft_harness import (
    SECRET,
    group_fixture,
    signed,
)

pytestmark = pytest.mark.integration


group = group_fixture("raft")


async def test_concurrent_writes_reach_every_member(group):
    async with group.client() as c:
        async def writer(w: int) -> None:
            for i in range(40):
                await c.put_credential(Credential(f"cw-{w}-{i}", f"s{w}-{i}", "owner"))

        await asyncio.gather(*(writer(w) for w in range(8)))
        sts = await group.wait_converged()
        assert {s["credentials"] for s in sts.values()} == {320}
        assert {s["applied_index"] for s in sts.values()} == {max(s["commit_index"] for s in sts.values())}
        lead = next(s for s in sts.values() if s["role"] == "leader")
        # Group commit: the leader made the entries durable in fewer fsyncs than entries.
        assert lead["fsyncs"] < lead["entries_written"]
    async with group.client() as fresh:  # a linearizable read sees every acknowledged write
        keys = {cr.access_key for cr in await fresh.list_credentials()}
        assert {f"cw-{w}-{i}" for w in range(8) for i in range(40)} <= keys


async def test_followers_redirect_writes_and_reads_to_the_leader(group):
    leader = await group.leader()
    for m in group.members.values():
        if m is leader:
            continue
        with pytest.raises(NotLeader) as err:
            await signed(m, "GET", "/v1/credentials")
        assert err.value.extra["leader"] == leader.address
        with pytest.raises(NotLeader) as err:
            await signed(m, "POST", "/v1/command",
                         {"v": 1, "type": "DeleteCredential", "args": {"access_key": "x"}})
        assert err.value.extra["leader"] == leader.address
    async with group.client([m for m in group.members.values() if m is not leader]) as c:
        await c.put_credential(Credential("via-follower", "s", "owner"))  # the client follows
        assert (await c.get_credential("via-follower")) is not None


async def test_concurrent_reads_are_answered_at_the_leader(group):
    async with group.client() as c:
        await c.put_credential(Credential("read-me", "s", "owner"))
        found = await asyncio.gather(*(c.get_credential("read-me") for _ in range(64)))
        assert all(f is not None and f.secret_key == "s" for f in found)


async def test_bad_raft_rpcs_are_refused_and_change_nothing(group):
    leader = await group.leader()
    follower = next(m for m in group.members.values() if m is not leader)
    before = await group.status(follower)
    url = f"http://{follower.address}/raft/messages"
    forged_heartbeat = {"v": 1, "type": "heartbeat", "to": follower.id, "from": "m9", "term": 10**6}
    async with aiohttp.ClientSession() as s:
        body = json.dumps({"v": 1, "from": "m9", "messages": [forged_heartbeat]}).encode()
        async with s.post(url, data=body) as resp:  # no signature
            assert resp.status == 403
        hdrs = internal_auth.headers("not-the-secret", "POST", "/raft/messages", body=body)
        async with s.post(url, data=body, headers=hdrs) as resp:
            assert resp.status == 403
    bad_batches = [
        "not json",
        {"v": 2, "from": "m9", "messages": []},
        {"v": 1, "from": "m9", "messages": [forged_heartbeat, {"v": 1, "type": "nonsense"}]},
        {"v": 1, "from": "m9", "messages": [forged_heartbeat, {**forged_heartbeat, "term": -1}]},
        {"v": 1, "from": "m9", "messages": [{**forged_heartbeat, "to": "someone-else"}]},
        {"v": 1, "from": "m8", "messages": [forged_heartbeat]},
    ]
    for bad in bad_batches:
        with pytest.raises(InvalidArgument):
            await signed(follower, "POST", "/raft/messages", bad)
    # Snapshot chunks: out of order, and a "complete" file that fails its checksum.
    snap_msg = {"v": 1, "type": "snap", "to": follower.id, "from": "m9", "term": 10**6,
                "snapshot": {"index": 10**6, "term": 10**6, "conf_state": {"voters": ["m9"], "learners": []}}}
    q = "msg=" + quote(json.dumps(snap_msg), safe="")
    async with aiohttp.ClientSession() as s:
        for path, chunk, status in [(f"/raft/snapshot?{q}&offset=5&total=10&done=0", b"12345", 409),
                                    (f"/raft/snapshot?{q}&offset=0&total=5&done=1", b"12345", 400)]:
            hdrs = internal_auth.headers(SECRET, "POST", path, body=chunk, target=follower.address)
            async with s.post(URL(f"http://{follower.address}{path}", encoded=True),
                              data=chunk, headers=hdrs) as resp:
                assert resp.status == status, await resp.text()
    after = await group.status(follower)
    assert after["term"] == before["term"] and after["leader"] == before["leader"] == leader.id
    assert after["snapshots_installed"] == before["snapshots_installed"]
    async with group.client() as c:  # and the group still commits
        await c.put_credential(Credential("after-bad-rpcs", "s", "owner"))
