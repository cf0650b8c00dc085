"""``objstore status``: the cluster as the metadata service and the nodes see it.

Finds the cluster as every admin command does (:mod:`ops.cli.cluster`). Prints the
metadata service's state, the ring epoch, how many buckets have each data policy
(``replica:N``, ``ec:K+M``), and one row per storage node (state, zone, weight, share of
the ring, capacity used); ``--json`` prints the same as one JSON document, with each
bucket's policy.
"""
from __future__ import annotations

import argparse
import asyncio
import ssl
from collections import Counter
from typing import Any

import aiohttp

from metadata.api.client import MetadataClient
from objstore.node.client import StorageClient
from objstore.ring import build_ring, describe
from ops.cli.cluster import add_cluster_arguments, find_cluster
from ops.cli.output import OK, add_json_argument, emit, human_size, table


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="show the cluster: nodes, state, ring epoch, capacity")
    add_cluster_arguments(p)
    add_json_argument(p)
    p.set_defaults(func=run)


async def collect(addrs: list[str], secret: str, tls: ssl.SSLContext | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        meta = MetadataClient(addrs, secret, session=session, tls=tls)
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
        return {"metadata": meta_status, "ring_epoch": cmap.epoch, "nodes": nodes, "bucket_policies": buckets}


def _policy_counts(bucket_policies: dict[str, str]) -> str:
    counts = Counter(bucket_policies.values())
    return "  ".join(f"{p} {counts[p]} bucket{'s' * (counts[p] != 1)}" for p in sorted(counts)) or "no buckets"


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
        "",
    ]
    rows = [("NODE", "ADDRESS", "ZONE", "STATE", "WEIGHT", "RING", "BLOBS", "USED", "CAPACITY")]
    for n in status["nodes"]:
        state = n["state"] if n["reachable"] else f"{n['state']} (unreachable)"
        rows.append((n["node_id"], n["address"], n["zone"], state, f"{n['weight']:g}",
                     f"{100 * n['ring_share']:.1f}%", str(n["blob_count"] if n["blob_count"] is not None else "-"),
                     human_size(n["used_bytes"]), human_size(n["capacity_bytes"])))
    return "\n".join(lines) + "\n" + table(rows)


def run(args: argparse.Namespace) -> int:
    cluster = find_cluster(args)
    try:
        status = asyncio.run(collect(list(cluster.metadata), cluster.secret, cluster.tls()))
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
        raise cluster.unreachable(exc) from None
    emit(args, status, render)
    return OK
