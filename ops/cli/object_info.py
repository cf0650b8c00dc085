"""``objstore object info BUCKET KEY``: where one object version's bytes are, and whether
the nodes still hold them.

Reads the version record from the metadata service with the cluster secret (found as every
admin command finds it: :mod:`ops.cli.cluster`), then asks each node of its placement for
its blob (an internal HEAD). Prints the policy, size, ETag, version id, ring epoch and
checksums, then one row per replica or shard: its index (shard i of an ``ec:K+M`` layout;
0 for every replica), node id, address, zone and whether that node has the blob now
(``yes``, ``no``, ``unreachable``, or ``-`` for a shard no node stored). A multipart object
has one group of rows per part. ``--json`` prints the same as one JSON document.

:func:`blob_rows` is pure: the rows a record's placement gives under a cluster map.
"""
from __future__ import annotations

import argparse
import asyncio
from typing import Any, Sequence

import aiohttp

from metadata.api.client import MetadataClient
from objstore.erasure.data_layout import DataLayout
from objstore.errors import ObjstoreError
from objstore.node.client import StorageClient
from objstore.types import ClusterMap, ObjectVersion
from ops.cli.cluster import ClusterRef, add_cluster_arguments, find_cluster
from ops.cli.output import OK, CommandError, add_json_argument, emit, human_size, state, table


def add_parser(sub: Any) -> None:
    p = sub.add_parser("object", help="inspect one object: its policy and where its replicas or shards are")
    actions = p.add_subparsers(dest="object_action", required=True)
    info = actions.add_parser("info", help="show an object's record and which nodes hold its blobs")
    info.add_argument("bucket", metavar="BUCKET")
    info.add_argument("key", metavar="KEY")
    info.add_argument("--version-id", help="a version id (default: the current version)")
    add_cluster_arguments(info)
    add_json_argument(info)
    p.set_defaults(func=run)


def blob_rows(layout: DataLayout, placement: Sequence[str], cmap: ClusterMap) -> list[dict[str, Any]]:
    """One row per replica or shard of a blob placed at ``placement``: ``index`` (the shard
    index, 0 for a replica), ``node_id`` ("" for a shard no node stored), ``address``, ``zone``."""
    rows = []
    for i, node_id in enumerate(placement):
        node = cmap.node(node_id) if node_id else None
        rows.append({"index": i if layout.erasure_coded else 0, "node_id": node_id,
                     "address": node.address if node else "", "zone": node.zone if node else ""})
    return rows


async def _probe(storage: StorageClient, version_id: str, row: dict[str, Any]) -> str:
    if not row["address"]:
        return "-"
    try:
        found = await storage.head_blob(row["address"], version_id, row["index"])
    except ObjstoreError:
        return "unreachable"
    return "yes" if found is not None else "no"


async def collect(cluster: ClusterRef, bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        tls = cluster.tls()
        meta = MetadataClient(list(cluster.metadata), cluster.secret, session=session, tls=tls)
        storage = StorageClient(session, cluster.secret, tls=tls)
        try:
            version = await meta.get_object(bucket, key, version_id)
        except ObjstoreError as exc:
            raise CommandError(f"{bucket}/{key}: {exc.message}; check the bucket and key (`aws s3 ls s3://{bucket}/` "
                               "lists the keys), or give --version-id for an older version") from None
        cmap = await meta.get_cluster_map()
        layout = DataLayout.parse(version.policy)
        blobs = ([(p.number, p.version_id, p.placement, p.size, p.etag) for p in version.parts] if version.parts
                 else [(None, version.version_id, version.placement, version.size, version.etag)])
        groups = []
        for number, blob_id, placement, size, etag in blobs:
            rows = blob_rows(layout, placement, cmap)
            held = await asyncio.gather(*(_probe(storage, blob_id, r) for r in rows))
            groups.append({"part": number, "blob_id": blob_id, "size": size, "etag": etag,
                           "blobs": [{**r, "has_blob": h} for r, h in zip(rows, held)]})
        return _summary(version, groups)


def _summary(v: ObjectVersion, groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {"bucket": v.bucket, "key": v.key, "version_id": v.s3_version_id, "internal_version_id": v.version_id,
            "policy": v.policy, "size": v.size, "etag": v.etag, "ring_epoch": v.ring_epoch,
            "checksums": dict(v.checksums), "last_modified": v.last_modified, "parts": groups}


def render(info: dict[str, Any]) -> str:
    sums = "  ".join(f"{k} {v}" for k, v in sorted(info["checksums"].items())) or "-"
    lines = [
        f"object      {info['bucket']}/{info['key']}",
        f"version id  {info['version_id']}  (internal {info['internal_version_id']})",
        f"policy      {info['policy']}",
        f"size        {info['size']} ({human_size(info['size'])})",
        f'etag        "{info["etag"]}"',
        f"ring epoch  {info['ring_epoch']}",
        f"checksums   {sums}",
    ]
    multipart = info["parts"] and info["parts"][0]["part"] is not None
    rows: list[tuple[str, ...]] = [(("PART",) if multipart else ()) + ("INDEX", "NODE", "ADDRESS", "ZONE", "HAS BLOB")]
    for g in info["parts"]:
        for b in g["blobs"]:
            rows.append(((str(g["part"]),) if multipart else ())
                        + (str(b["index"]), b["node_id"] or "-", b["address"] or "-", b["zone"] or "-",
                           state(b["has_blob"])))
    return "\n".join(lines) + "\n\n" + table(rows)


def run(args: argparse.Namespace) -> int:
    cluster = find_cluster(args)
    try:
        info = asyncio.run(collect(cluster, args.bucket, args.key, args.version_id))
    except CommandError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
        raise cluster.unreachable(exc) from None
    emit(args, info, render)
    return OK
