"""Membership of a real Raft metadata group through the CLI: `objstore metadata add`,
`transfer-leader`, `remove` and `status`."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ops.cli.metadata_admin import render_status
from objstore.types import Credential
from tests.integration.test_metadata_raft_harness import (
    REPO,
    SECRET,
    RaftGroup,
    group_fixture,
    write_credentials,
)

pytestmark = pytest.mark.integration


group = group_fixture("raft-membership")


def cli(group: RaftGroup, *args: str) -> subprocess.CompletedProcess:
    addrs = ",".join(m.address for m in group.members.values())
    return subprocess.run([sys.executable, "-m", "ops.cli", "metadata", *args, "--metadata", addrs,
                           "--secret", SECRET], cwd=REPO, capture_output=True, text=True, timeout=120)


async def test_add_transfer_remove_and_status_through_the_cli(group):
    await write_credentials(group, "before-join", 30)
    m4 = group.add_joining("m4")
    st = await group.status(m4)  # a joining node bootstraps nothing of its own
    assert st["members"] == {} and st["commit_index"] == 0 and st["leader"] is None

    r = cli(group, "add", f"m4={m4.address}")
    assert r.returncode == 0 and "m4: added as a voter" in r.stdout, r.stdout + r.stderr
    sts = await group.wait_converged()
    assert sts["m4"]["members"]["m4"] == {"address": m4.address, "voter": True}
    assert sts["m4"]["credentials"] == sts["m1"]["credentials"] >= 30

    r = cli(group, "transfer-leader", "m4")
    assert r.returncode == 0 and "m4: leader" in r.stdout, r.stdout + r.stderr
    assert (await group.leader()) is m4

    r = cli(group, "remove", "m1")
    assert r.returncode == 0 and "m1: removed" in r.stdout, r.stdout + r.stderr
    rest = [group.members[n] for n in ("m2", "m3", "m4")]
    async with group.client(rest) as c:
        await c.put_credential(Credential("after-remove", "s", "owner"))
    sts = await group.wait_converged(rest)
    assert set(sts["m4"]["members"]) == {"m2", "m3", "m4"}
    assert (await group.status(group.members["m1"]))["role"] == "removed"

    r = cli(group, "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["leader"] == "m4"
    rows = {m["node_id"]: m for m in st["members"]}
    assert {n: rows[n]["membership"] for n in rows} == {"m1": "not a member", "m2": "voter", "m3": "voter",
                                                          "m4": "voter"}
    assert all(rows[n]["applied_index"] == rows["m4"]["commit_index"] for n in ("m2", "m3", "m4"))
    table = render_status(st)  # what `objstore metadata status` prints without --json
    assert table.startswith("leader m4")
    for col in ("ROLE", "MEMBER", "TERM", "COMMIT", "APPLIED", "LOG SIZE", "SNAPSHOT"):
        assert col in table
    assert "removed" in table and "not a member" in table
