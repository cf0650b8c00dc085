"""``objstore metadata status|add|remove|transfer-leader``: administer the Raft group.

    objstore metadata status [--json]
    objstore metadata add ID=HOST:PORT      (the node runs with --join; learner, then voter)
    objstore metadata remove ID
    objstore metadata transfer-leader ID

Each finds the cluster like ``objstore status``: ``--metadata host:port,...`` and
``--secret`` (or env OBJSTORE_CLUSTER_SECRET), or the ``cluster.json`` and
``credentials.json`` of a local ``--data-dir``. Changes go to the leader (the client
follows NotLeader redirects); ``status`` asks every member for its own view and prints
one row per member (role, term, commit and applied index, log size, last snapshot,
snapshots installed), unreachable members included.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import aiohttp

from metadata.api.client import MetadataClient
from objstore.errors import ObjstoreError

COMMANDS = ("status", "add", "remove", "transfer-leader")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default="./objstore-data",
                        help="local cluster data dir (default ./objstore-data)")
    common.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    common.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    common.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a change (default 180)")
    p = argparse.ArgumentParser(prog="objstore metadata", description="Administer the metadata Raft group.")
    sub = p.add_subparsers(dest="action", required=True)
    s = sub.add_parser("status", parents=[common], help="every member: role, term, indexes, log, snapshots")
    s.add_argument("--json", action="store_true", help="print JSON")
    a = sub.add_parser("add", parents=[common], help="add a node started with --join: learner, then voter")
    a.add_argument("member", metavar="ID=HOST:PORT")
    r = sub.add_parser("remove", parents=[common], help="remove a member")
    r.add_argument("member", metavar="ID")
    t = sub.add_parser("transfer-leader", parents=[common], help="hand leadership to a voter")
    t.add_argument("member", metavar="ID")
    return p


def find_cluster(args: argparse.Namespace) -> tuple[list[str], str]:
    """(metadata addresses, cluster secret) from flags, env, or the local data dir."""
    secret = args.secret or os.environ.get("OBJSTORE_CLUSTER_SECRET")
    addrs = [a.strip() for a in (args.metadata or "").split(",") if a.strip()]
    d = Path(args.data_dir)
    if not addrs and (d / "cluster.json").exists():
        info = json.loads((d / "cluster.json").read_text())
        addrs = [p["address"] for p in info.get("processes", []) if p.get("role") == "metadata"]
    if not secret and (d / "credentials.json").exists():
        secret = json.loads((d / "credentials.json").read_text()).get("cluster_secret")
    if not addrs or not secret:
        raise SystemExit("objstore metadata: no cluster found; give --metadata and --secret, "
                         "or --data-dir of a running `objstore up`")
    return addrs, secret


async def collect_status(addrs: list[str], secret: str) -> dict[str, Any]:
    """Every member's own status (``{"reachable": False}`` for those that do not answer)."""
    async with aiohttp.ClientSession() as session:
        async def one(addr: str) -> dict[str, Any] | None:
            c = MetadataClient([addr], secret, session=session, deadline=2.0, attempt_timeout=2.0)
            try:
                return await c.status()
            except ObjstoreError:
                return None

        seen = [s for s in await asyncio.gather(*(one(a) for a in addrs)) if s is not None]
        members: dict[str, str] = {}
        for st in sorted(seen, key=lambda s: -s.get("term", 0)):
            for nid, m in st.get("members", {}).items():
                members.setdefault(nid, m.get("address", ""))
        by_addr = {s.get("address"): s for s in seen}
        missing = [a for a in set(members.values()) - set(by_addr) if a]
        for st in await asyncio.gather(*(one(a) for a in missing)):
            if st is not None:
                by_addr[st.get("address")] = st
        rows = []
        for nid in sorted(set(members) | {s["node_id"] for s in by_addr.values()}):
            addr = members.get(nid) or next((a for a, s in by_addr.items() if s["node_id"] == nid), "")
            st = by_addr.get(addr)
            if st is None or st.get("node_id") != nid:
                rows.append({"node_id": nid, "address": addr, "reachable": False})
            else:
                rows.append({**st, "reachable": True})
        known = set(members.values()) | set(by_addr)
        rows += [{"node_id": "?", "address": a, "reachable": False} for a in addrs if a not in known]
        leaders = [r for r in rows if r.get("role") == "leader"]
        leader = max(leaders, key=lambda r: r["term"]) if leaders else None
        conf = leader.get("members", {}) if leader is not None else {}
        for r in rows:
            m = conf.get(r["node_id"])
            r["membership"] = ("-" if leader is None else "not a member" if m is None
                               else "voter" if m.get("voter") else "learner")
        return {"leader": leader["node_id"] if leader else None, "term": leader["term"] if leader else None,
                "members": rows}


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def render_status(st: dict[str, Any]) -> str:
    head = (f"leader {st['leader']}  term {st['term']}" if st["leader"] else "no leader reachable")
    header = ("ID", "ADDRESS", "ROLE", "MEMBER", "TERM", "COMMIT", "APPLIED", "LOG", "LOG SIZE", "SNAPSHOT",
              "INSTALLED")
    rows = [header]
    for m in st["members"]:
        if not m["reachable"]:
            rows.append((m["node_id"], m["address"], "unreachable", m["membership"]) + ("-",) * 7)
            continue
        role = m["role"] + (" (recovering)" if m.get("recovering_until") else "")
        rows.append((m["node_id"], m["address"], role, m["membership"], str(m["term"]), str(m["commit_index"]),
                     str(m["applied_index"]), f"{m['log_first_index']}..{m['log_last_index']}",
                     _size(m.get("log_bytes")), str(m["last_snapshot_index"]), str(m.get("snapshots_installed", 0))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [head, ""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


async def _change(addrs: list[str], secret: str, timeout: float, op: str, nid: str, address: str | None) -> dict:
    async with MetadataClient(addrs, secret, client_id="admin", deadline=timeout, attempt_timeout=timeout) as c:
        return await c.change_membership(op, nid, address)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    addrs, secret = find_cluster(args)
    try:
        if args.action == "status":
            st = asyncio.run(collect_status(addrs, secret))
            print(json.dumps(st, indent=2) if args.json else render_status(st))
            return 0 if st["leader"] else 1
        if args.action == "add":
            nid, sep, address = args.member.partition("=")
            if not sep or ":" not in address:
                print("objstore metadata add: expected ID=HOST:PORT", file=sys.stderr)
                return 2
            result = asyncio.run(_change(addrs, secret, args.timeout, "add", nid, address))
        elif args.action == "remove":
            result = asyncio.run(_change(addrs, secret, args.timeout, "remove", args.member, None))
        else:
            result = asyncio.run(_change(addrs, secret, args.timeout, "transfer", args.member, None))
    except ObjstoreError as exc:
        print(f"objstore metadata {args.action}: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    print(f"{result['node']}: {result['result']}")
    return 0
