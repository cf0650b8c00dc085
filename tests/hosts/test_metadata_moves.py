"""A metadata member moved to a new host needs no edit on the other hosts.

Each member takes the other members' addresses from the Raft configuration (the address
each was added at, kept in its log and snapshots); the ``peers`` of its config file only
bootstrap a new group and tell a joining node where the group is. So when m3 leaves h3 and
comes back on h4 under the same id (removed, then started there with ``join = true``), m1
and m2 reach it at its new address although their config files still name h3, and keep
doing so after a restart with those unchanged files.
"""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from metadata.api.client import MetadataClient
from tests.harness.eventually import eventually
from tests.harness.hosts.deploy import CLIENT, Deployment

pytestmark = pytest.mark.integration


def members(d: Deployment, host: str) -> dict[str, dict]:
    """``objstore metadata status --json`` from ``host`` (with its own config): member -> row."""
    out = d.objstore(host, "metadata", "status", "--json", "--config", str(d.service("metadata", host).config),
                     timeout=90)
    rows = json.loads(out.stdout)["members"] if out.returncode in (0, 1) and out.stdout else []
    return {m["node_id"]: m for m in rows}


def test_a_member_moved_to_a_new_host_needs_no_edit_on_the_others(make_network, tmp_path):
    net = make_network(["h1", "h2", "h3", "h4", CLIENT])
    d = Deployment(net, "three-hosts", tmp_path, hosts=["h1", "h2", "h3"])
    d.services = [s for s in d.services if s.role == "metadata"]
    try:
        d.start()
        old = d.service("metadata", "h3")
        out = d.objstore("h1", "metadata", "remove", "m3", "--config", str(d.service("metadata", "h1").config),
                         timeout=90)
        assert out.returncode == 0, out.stderr
        d.stop_service(old)
        d.services.remove(old)

        # m3 on h4: h4's example config (join = true) with m3's id and h4's address for it.
        (moved,) = d.add_host("h4", layout="three-hosts")
        a3, a4 = net["h3"].address, net["h4"].address
        text = moved.config.read_text()
        text = text.replace('node_id = "m4"', 'node_id = "m3"').replace(f'"m3={a3}:7000", ', "")
        moved.config.write_text(text.replace(f'"m4={a4}:7000"', f'"m3={a4}:7000"'))
        d.start_service(moved)

        def m3_votes_at_h4() -> bool:
            m3 = members(d, "h1").get("m3", {})
            return m3.get("membership") == "voter" and m3.get("reachable") and m3.get("address") == f"{a4}:7000"

        eventually(m3_votes_at_h4, 90, 0.5, message=lambda: f"m3 a voter at h4: {members(d, 'h1')}")

        # m1 and m2 restart from their unchanged files (whose peers still put m3 on h3).
        for host in ("h1", "h2"):
            assert f'"m3={a3}:7000"' in d.service("metadata", host).config.read_text()
            s = d.service("metadata", host)
            d.stop_service(s)
            d.start_service(s)
        # Without m2, m1 and m3 are the majority: a write commits only if m1 reaches m3 on h4.
        d.stop_service(d.service("metadata", "h2"))
        addrs = [d.service("metadata", "h1").address, moved.address]

        async def write() -> str:
            async with MetadataClient(addrs, d.secret, deadline=60.0) as meta:
                await meta.create_bucket("moved", "owner", "replica:3", time.time())
                return (await meta.get_bucket("moved")).name

        assert d.from_client(lambda: asyncio.run(write())) == "moved"
    finally:
        d.stop()
