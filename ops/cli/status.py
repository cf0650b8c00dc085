"""``objstore status``: the cluster as the metadata service and the nodes see it.

Finds the cluster as every admin command does (:mod:`ops.cli.cluster`). Prints the
metadata service's state, the ring epoch, how many buckets have each data policy
(``replica:N``, ``ec:K+M``), and one row per storage node (state, zone, weight, share of
the ring, capacity used, and from the leader's liveness table the age of its last
heartbeat and its free space), then each node's scrubber (:mod:`ops.cli.scrub`: last full
pass, bytes verified, corrupt blobs found, repaired); ``--json`` prints the same as one JSON
document, with each bucket's policy and each node's ``scrub``.

Exit code (so scripts can use it): 0 healthy; 1 degraded (a storage node not up or not
reachable, except removed ones; a metadata member not answering its /health/live; objects
below their policy, when the metadata service reports ``objects_below_policy``); 2 unavailable (no metadata leader answered). The
problems are listed under the table, and in ``--json`` as ``health``. ``--watch`` is
``objstore top`` (:mod:`ops.cli.top`), a live view.
"""
from __future__ import annotations

import argparse
import asyncio
import ssl
from collections import Counter
from typing import Any

import aiohttp

from metadata.api.client import MetadataClient
from objstore.errors import ObjstoreError
from objstore.node.client import StorageClient
from objstore.ring import build_ring, describe
from objstore.tls import base_url, request_ssl
from ops.cli import scrub
from ops.cli.cluster import add_cluster_arguments, find_cluster
from ops.cli.output import OK, CommandError, add_json_argument, emit, human_size, state, table

DEGRADED = 1
UNAVAILABLE = 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show the cluster: nodes, state, ring epoch, capacity")
    add_cluster_arguments(p)
    add_json_argument(p)
    add_watch_arguments(p)
    p.set_defaults(func=run)


def add_watch_arguments(p: argparse.ArgumentParser, with_watch: bool = True) -> None:
    """The live view's flags (:mod:`ops.cli.top`; ``status`` also gets ``--watch``)."""
    if with_watch:
        p.add_argument("--watch", action="store_true",
                       help="a live view redrawn in place every --interval seconds, until Ctrl-C (= objstore top)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between frames of the live view (default 2)")
    p.add_argument("--count", type=int, default=0, help="end the live view after this many frames (default: "
                                                        "until Ctrl-C)")
    p.add_argument("--gateway", help="comma-separated host:port of gateways whose /metrics give requests/s and "
                                     "latency (default: cluster.json's)")
    p.add_argument("--metrics-token-file", help="file holding the /metrics bearer token, if the cluster requires "
                                                "one (or env OBJSTORE_METRICS_TOKEN)")


async def collect(addrs: list[str], secret: str, tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        meta = MetadataClient(addrs, secret, session=session, tls=tls, deadline=5.0)
        storage = StorageClient(session, secret, tls=tls)
        meta_status = await meta.status()
        cmap = await meta.get_cluster_map()
        buckets = {b.name: b.policy for b in await meta.list_buckets()}
        ring_nodes = describe(build_ring(cmap))["nodes"] if cmap.nodes else {}
        shares = {nid: d["replica_share"] for nid, d in ring_nodes.items()}

        async def node_stats(addr: str) -> dict[str, Any] | None:
            try:
                return await storage.stats(addr)
            except Exception:  # noqa: BLE001 - a down node is shown as unreachable
                return None

        async def live(addr: str) -> bool:
            try:
                async with session.get(base_url(addr, tls) + "/health/live", ssl=request_ssl(tls),
                                       timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    return resp.status == 200
            except Exception:  # noqa: BLE001 - any failure: not reachable
                return False

        members = meta_status.get("members") or {}
        reachable = await asyncio.gather(*(live(m["address"]) for m in members.values()))
        meta_status["members_reachable"] = dict(zip(members, reachable))
        stats = await asyncio.gather(*(node_stats(n.address) for n in cmap.nodes))
        health = {h["node_id"]: h for h in await _node_health(meta)}
        nodes = []
        for n, st in zip(cmap.nodes, stats):
            h = health.get(n.node_id, {})
            nodes.append({
                **n.to_dict(),
                "reachable": st is not None,
                "used_bytes": st.get("used_bytes") if st else None,
                "capacity_bytes": st.get("capacity_bytes") if st else n.capacity_bytes,
                "blob_count": st.get("blob_count") if st else None,
                "ring_share": shares.get(n.node_id, 0.0),
                "heartbeat_age": h.get("heartbeat_age"),
                "free_bytes": h.get("free_bytes"),
                "reserve_bytes": st.get("reserve_bytes") if st else None,
            })
        status = {"metadata": meta_status, "ring_epoch": cmap.epoch, "placement_epoch": cmap.ring_epoch,
                  "kept_rings": [r.epoch for r in cmap.kept_rings], "nodes": nodes, "bucket_policies": buckets}
        await add_scrub(status, storage, {nid: h.get("scrub") for nid, h in health.items()})
        return status


async def add_scrub(status: dict[str, Any], storage: StorageClient,
                    heartbeat: dict[str, Any] | None = None) -> None:
    """Each reachable node's scrubber status as its ``scrub``; for a node that did not
    answer, the one its last heartbeat carried to the leader (``heartbeat``), else None."""
    async def one(addr: str) -> dict[str, Any] | None:
        try:
            return await storage.scrub_status(addr)
        except Exception:  # noqa: BLE001 - shown as unknown
            return None

    nodes = status["nodes"]
    found = await asyncio.gather(*(one(n["address"]) if n["reachable"] else asyncio.sleep(0) for n in nodes))
    for n, found_scrub in zip(nodes, found):
        n["scrub"] = found_scrub or (heartbeat or {}).get(n["node_id"])


async def _node_health(meta: MetadataClient) -> list[dict[str, Any]]:
    """The leader's liveness rows; none when it cannot give them (the columns show "-")."""
    try:
        return (await meta.node_health())["nodes"]
    except ObjstoreError:
        return []


def assess(status: dict[str, Any]) -> tuple[int, list[str]]:
    """(exit code, problems) of a collected status: OK, or DEGRADED with what is wrong."""
    problems = []
    for n in status["nodes"]:
        if n["state"] == "removed":
            continue
        if n["state"] == "full" and n.get("free_bytes") is not None and n.get("reserve_bytes"):
            problems.append(f"storage node {n['node_id']} is full: {human_size(n['free_bytes'])} free, "
                            f"below twice its {human_size(n['reserve_bytes'])} reserve (--reserve-bytes)")
        elif n["state"] != "up":
            problems.append(f"storage node {n['node_id']} is {n['state']}")
        elif not n["reachable"]:
            problems.append(f"storage node {n['node_id']} is unreachable")
    for nid, ok in status["metadata"].get("members_reachable", {}).items():
        if not ok:
            problems.append(f"metadata node {nid} is unreachable")
    below = status["metadata"].get("objects_below_policy")
    if below:
        problems.append(f"{below} objects are below their data policy")
    return (DEGRADED if problems else OK), problems


def _policy_counts(bucket_policies: dict[str, str]) -> str:
    counts = Counter(bucket_policies.values())
    return "  ".join(f"{p} {counts[p]} bucket{'s' * (counts[p] != 1)}" for p in sorted(counts)) or "no buckets"


def age(seconds: float | None) -> str:
    """A heartbeat's age: ``0.4s ago``; ``-`` when the leader has had none from the node."""
    return "-" if seconds is None else f"{seconds:.1f}s ago"


def _kept_rings_line(status: dict[str, Any]) -> list[str]:
    """While older rings are kept (a ring change whose commit manifests are not yet handed
    over to the new owners: quorum reads and manifest writes consult them too), say so."""
    kept = status.get("kept_rings") or []
    if not kept:
        return []
    return [f"placement since epoch {status.get('placement_epoch', '-')}; older rings kept until handed over: "
            f"{', '.join(f'epoch {e}' for e in kept)}"]


def render(status: dict[str, Any]) -> str:
    m = status["metadata"]
    lines = [
        f"metadata   node {m.get('node_id', '?')}  role {m.get('role', '?')}  term {m.get('term', '-')}  "
        f"commit {m.get('commit_index', '-')}  applied {m.get('applied_index', '-')}",
        f"objects    {m.get('objects', '-')}  buckets {m.get('buckets', '-')}",
        f"below policy {m.get('objects_below_policy', '-')} objects  "
        f"{human_size(m.get('bytes_below_policy'))}",
        f"policies   {_policy_counts(status['bucket_policies'])}",
        f"ring epoch {status['ring_epoch']}   storage nodes {len(status['nodes'])}",
        *_kept_rings_line(status),
        "",
    ]
    rows = [("NODE", "ADDRESS", "ZONE", "STATE", "WEIGHT", "RING", "BLOBS", "USED", "CAPACITY", "FREE",
             "HEARTBEAT")]
    for n in status["nodes"]:
        node_state = n["state"] if n["reachable"] else f"{n['state']} (unreachable)"
        rows.append((n["node_id"], n["address"], n["zone"], state(node_state), f"{n['weight']:g}",
                     f"{100 * n['ring_share']:.1f}%", str(n["blob_count"] if n["blob_count"] is not None else "-"),
                     human_size(n["used_bytes"]), human_size(n["capacity_bytes"]),
                     human_size(n.get("free_bytes")), age(n.get("heartbeat_age"))))
    scrubs = [n["scrub"] for n in status["nodes"] if n.get("scrub")]
    scrub_table = "\n\nscrub\n" + scrub.render(scrubs) if scrubs else ""
    health = status.get("health", {})
    verdict = "\n".join(["", f"health     {state(health.get('state', '?'))}",
                         *(f"  - {p}" for p in health.get("problems", []))])
    return "\n".join(lines) + "\n" + table(rows) + verdict + scrub_table


def run(args: argparse.Namespace) -> int:
    if getattr(args, "watch", False):
        from ops.cli import top  # top builds on this module

        return top.run(args)
    cluster = find_cluster(args)
    try:
        status = asyncio.run(collect(list(cluster.metadata), cluster.secret, cluster.tls()))
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
        raise CommandError(cluster.unreachable(exc).message, UNAVAILABLE) from None
    code, problems = assess(status)
    status["health"] = {"state": "healthy" if code == OK else "degraded", "problems": problems}
    emit(args, status, render)
    return code
