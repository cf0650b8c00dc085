"""``objstore status``: the cluster as the metadata service and the nodes see it.

Finds the cluster from ``--metadata`` and ``--secret`` (or env OBJSTORE_CLUSTER_SECRET),
or from a local data dir's ``cluster.json`` and ``credentials.json``. Prints the metadata
service's state, the ring epoch, and one row per storage node (state, zone, weight, share
of the ring, capacity used); ``--json`` prints the same as one JSON document.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

from metadata.api.client import MetadataClient
from objstore.node.client import StorageClient
from objstore.ring import build_ring, describe


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show the cluster: nodes, state, ring epoch, capacity")
    p.add_argument("--data-dir", default="./objstore-data", help="local cluster data dir (default ./objstore-data)")
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def find_cluster(args: argparse.Namespace) -> tuple[list[str], str]:
    """(metadata addresses, cluster secret) from flags, env, or the local data dir."""
    secret = args.secret or os.environ.get("OBJSTORE_CLUSTER_SECRET")
    addrs = [a for a in (args.metadata or "").split(",") if a]
    d = Path(args.data_dir)
    if not addrs and (d / "cluster.json").exists():
        info = json.loads((d / "cluster.json").read_text())
        addrs = [p["address"] for p in info["processes"] if p["role"] == "metadata"]
    if not secret and (d / "credentials.json").exists():
        secret = json.loads((d / "credentials.json").read_text())["cluster_secret"]
    if not addrs or not secret:
        raise SystemExit(
            "objstore status: no cluster found; give --metadata and --secret, or --data-dir of a running `objstore up`"
        )
    return addrs, secret


async def collect(addrs: list[str], secret: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        meta = MetadataClient(addrs, secret, session=session)
        storage = StorageClient(session, secret)
        meta_status = await meta.status()
        cmap = await meta.get_cluster_map()
        ring_nodes = describe(build_ring(cmap))["nodes"] if cmap.nodes else {}
        shares = {nid: d["replica_share"] for nid, d in ring_nodes.items()}

        async def node_stats(addr: str) -> dict[str, Any] | None:
            try:
                return await storage.stats(addr)
            except Exception:  # noqa: BLE001 - a down node is shown as unreachable
                return None

        stats = await asyncio.gather(*(node_stats(n.address) for n in cmap.nodes))
        nodes = []
        for n, st in zip(cmap.nodes, stats):
            nodes.append({
                **n.to_dict(),
                "reachable": st is not None,
                "used_bytes": st.get("used_bytes") if st else None,
                "capacity_bytes": st.get("capacity_bytes") if st else n.capacity_bytes,
                "blob_count": st.get("blob_count") if st else None,
                "ring_share": shares.get(n.node_id, 0.0),
            })
        return {"metadata": meta_status, "ring_epoch": cmap.epoch, "nodes": nodes}


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def render(status: dict[str, Any]) -> str:
    m = status["metadata"]
    lines = [
        f"metadata   node {m.get('node_id', '?')}  role {m.get('role', '?')}  term {m.get('term', '-')}  "
        f"commit {m.get('commit_index', '-')}  applied {m.get('applied_index', '-')}",
        f"objects    {m.get('objects', '-')}  buckets {m.get('buckets', '-')}",
        f"ring epoch {status['ring_epoch']}   storage nodes {len(status['nodes'])}",
        "",
    ]
    header = ("NODE", "ADDRESS", "ZONE", "STATE", "WEIGHT", "RING", "BLOBS", "USED", "CAPACITY")
    rows = [header]
    for n in status["nodes"]:
        state = n["state"] if n["reachable"] else f"{n['state']} (unreachable)"
        rows.append((n["node_id"], n["address"], n["zone"], state, f"{n['weight']:g}",
                     f"{100 * n['ring_share']:.1f}%", str(n["blob_count"] if n["blob_count"] is not None else "-"),
                     _size(n["used_bytes"]), _size(n["capacity_bytes"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    addrs, secret = find_cluster(args)
    try:
        status = asyncio.run(collect(addrs, secret))
    except Exception as exc:  # noqa: BLE001
        print(f"objstore status: cannot reach the metadata service at {', '.join(addrs)}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0
