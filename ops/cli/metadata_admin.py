"""``objstore metadata status|add|remove|transfer-leader``: administer the Raft group.

    objstore metadata status [--json]
    objstore metadata add ID=HOST:PORT      (the node runs with --join; learner, then voter)
    objstore metadata remove ID
    objstore metadata transfer-leader ID

Each finds the cluster as every admin command does (:mod:`ops.cli.cluster`). Changes go
to the leader (the client follows NotLeader redirects); ``status`` asks every member for
its own view and prints one row per member (role, term, commit and applied index, log
size, last snapshot, snapshots installed), unreachable members included, and exits 2
(unavailable) when no leader answers.
"""
from __future__ import annotations

import argparse
import asyncio
import ssl
from typing import Any, Sequence

import aiohttp

from metadata.api.client import MetadataClient
from objstore.errors import ObjstoreError
from ops.cli.cluster import add_cluster_arguments, find_cluster
from ops.cli.output import (OK, UNAVAILABLE, USAGE, CommandError, add_json_argument, emit, human_size, paint, state,
                            table)

_OPS = {"add": "add", "remove": "remove", "transfer-leader": "transfer"}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_cluster_arguments(common)
    common.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a change (default 180)")
    add_json_argument(common)
    p = argparse.ArgumentParser(prog="objstore metadata", description="Administer the metadata Raft group.")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("status", parents=[common], help="every member: role, term, indexes, log, snapshots")
    a = sub.add_parser("add", parents=[common], help="add a node started with --join: learner, then voter")
    a.add_argument("member", metavar="ID=HOST:PORT")
    r = sub.add_parser("remove", parents=[common], help="remove a member")
    r.add_argument("member", metavar="ID")
    t = sub.add_parser("transfer-leader", parents=[common], help="hand leadership to a voter")
    t.add_argument("member", metavar="ID")
    return p


async def collect_status(addrs: list[str], secret: str, tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    """Every member's own status (``{"reachable": False}`` for those that do not answer)."""
    async with aiohttp.ClientSession() as session:
        async def one(addr: str) -> dict[str, Any] | None:
            c = MetadataClient([addr], secret, session=session, deadline=2.0, attempt_timeout=2.0, tls=tls)
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


def render_status(st: dict[str, Any]) -> str:
    head = (f"leader {st['leader']}  term {st['term']}" if st["leader"] else paint("no leader reachable", "red"))
    header = ("ID", "ADDRESS", "ROLE", "MEMBER", "TERM", "COMMIT", "APPLIED", "LOG", "LOG SIZE", "SNAPSHOT",
              "INSTALLED")
    rows = [header]
    for m in st["members"]:
        if not m["reachable"]:
            rows.append((m["node_id"], m["address"], state("unreachable"), state(m["membership"])) + ("-",) * 7)
            continue
        role = m["role"] + (" (recovering)" if m.get("recovering_until") else "")
        rows.append((m["node_id"], m["address"], state(role), state(m["membership"]), str(m["term"]),
                     str(m["commit_index"]),
                     str(m["applied_index"]), f"{m['log_first_index']}..{m['log_last_index']}",
                     human_size(m.get("log_bytes")), str(m["last_snapshot_index"]),
                     str(m.get("snapshots_installed", 0))))
    return f"{head}\n\n{table(rows)}"


async def _change(addrs: list[str], secret: str, timeout: float, op: str, nid: str, address: str | None,
                  tls: ssl.SSLContext | None = None) -> dict:
    async with MetadataClient(addrs, secret, client_id="admin", deadline=timeout, attempt_timeout=timeout,
                              tls=tls) as c:
        return await c.change_membership(op, nid, address)


def main(argv: Sequence[str]) -> int:
    """Run ``objstore metadata <action> ...``; raises CommandError (see :mod:`ops.cli.output`)."""
    args = build_parser().parse_args(list(argv))
    cluster = find_cluster(args)
    addrs = list(cluster.metadata)
    if args.action == "status":
        st = asyncio.run(collect_status(addrs, cluster.secret, cluster.tls()))
        emit(args, st, render_status)
        return OK if st["leader"] else UNAVAILABLE
    nid, address = args.member, None
    if args.action == "add":
        nid, sep, address = args.member.partition("=")
        if not sep or ":" not in address:
            raise CommandError("expected ID=HOST:PORT, e.g. m4=127.0.0.1:7004", USAGE)
    try:
        result = asyncio.run(_change(addrs, cluster.secret, args.timeout, _OPS[args.action], nid, address,
                                    cluster.tls()))
    except ObjstoreError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None
    emit(args, result, lambda r: f"{r['node']}: {r['result']}")
    return OK
