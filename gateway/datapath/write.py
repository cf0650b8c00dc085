"""The write steps every writing handler shares: stream a new blob to its replicas, commit
its record, collect what it replaced; and the one delete path.

Order, which is what makes a write atomic to readers: the blob is durable on a write
quorum of nodes (:func:`write_blob`) before its record commits (:func:`commit_version`,
:func:`commit_part`); a crash in between leaves only unreferenced blobs. Blobs of records
nothing points to any more are deleted after the answer (``ctx.background``). On a
definite refusal of a commit (4xx) the new blobs are deleted at once; after an ambiguous
failure (5xx) they stay for garbage collection to decide.
"""
from __future__ import annotations

from typing import AsyncIterator, Sequence

from gateway.context import GatewayContext
from gateway.datapath.garbage import collect_parts
from gateway.datapath.replicate import delete_blobs, write_replicas
from metadata.api.results import DeleteResult, WriteResult
from metadata.api.upload_client import UploadClient
from metadata.api.upload_records import MultipartUpload, UploadedPart
from objstore.errors import InsufficientReplicas, ObjstoreError
from objstore.types import NodeInfo, ObjectVersion, Policy


async def write_blob(
    ctx: GatewayContext, bucket: str, key: str, policy: Policy, size: int, chunks: AsyncIterator[bytes],
    version_id: str | None = None, *, spread: bool = False,
) -> tuple[str, list[NodeInfo]]:
    """Place a new blob of ``size`` bytes for (bucket, key) and stream ``chunks`` to it.

    The ring places it by key, or with ``spread`` (parts of a multipart upload) by its
    version id, so one object's parts spread over the cluster. Returns (the version id, a
    new one unless given, and the nodes holding the blob durably, in placement order).
    Raises InsufficientReplicas below the write quorum, or the error ``chunks`` raised
    (then no node holds a complete blob).
    """
    version_id = version_id or ctx.hlc.next()
    nodes = await ctx.topology.place(bucket, version_id if spread else key, policy.n)
    quorum = min(policy.default_write_quorum(), policy.n)
    if len(nodes) < quorum:
        raise InsufficientReplicas(f"Only {len(nodes)} storage nodes are reachable; {quorum} are required.")
    stored = await write_replicas(
        ctx.storage,
        ctx.topology,
        nodes,
        version_id=version_id,
        bucket=bucket,
        key=key,
        policy=str(policy),
        size=size,
        chunks=chunks,
        write_quorum=quorum,
    )
    return version_id, [n for n in nodes if n.node_id in stored]


async def commit_version(
    ctx: GatewayContext, record: ObjectVersion, holders: Sequence[NodeInfo], *,
    if_match: str | None = None, if_none_match: bool = False,
) -> WriteResult:
    """Commit ``record`` (whose blob ``holders`` store), under the write conditions given;
    returns what the write did (its S3 version id; the version it replaced, if any).

    The replaced version's blobs are collected after the answer; see the module docstring
    for what a refusal does.
    """
    try:
        result = await ctx.meta.put_version(record, if_match=if_match, if_none_match=if_none_match)
    except ObjstoreError as err:
        if err.status < 500:
            ctx.background(delete_blobs(ctx.storage, holders, record.version_id))
        raise
    previous = result.replaced
    if previous is not None and previous.version_id != record.version_id:
        ctx.background(collect_version(ctx, previous))
    return result


async def commit_part(ctx: GatewayContext, upload: MultipartUpload, part: UploadedPart,
                      holders: list[NodeInfo]) -> None:
    """Record ``part``; collect the part it replaced. On a definite refusal (the upload is
    gone) the new blobs are deleted and the error re-raised."""
    try:
        replaced = await UploadClient(ctx.meta).put_part(upload.bucket, upload.key, upload.upload_id, part)
    except ObjstoreError as err:
        if err.status < 500:
            ctx.background(delete_blobs(ctx.storage, holders, part.part.version_id))
        raise
    if replaced is not None:
        ctx.background(collect_parts(ctx.storage, ctx.topology, [replaced]))


async def collect_version(ctx: GatewayContext, version: ObjectVersion) -> None:
    """Delete the blobs of a version no record points to any more (one per part for a
    multipart object: ``version.blob_refs()``)."""
    for version_id, placement in version.blob_refs():
        nodes = [n for n in (ctx.topology.node(i) for i in placement) if n is not None]
        await delete_blobs(ctx.storage, nodes, version_id)


async def delete_key(ctx: GatewayContext, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
    """Delete ``key`` (or one version of it) from ``bucket``; the caller checked ownership.

    The one delete path: DeleteObject and each key of DeleteObjects call it. What it does
    depends on the bucket's versioning (decided by the metadata service, atomically):
    unversioned, the key's record goes; versioned, a delete marker is added (its id from
    this gateway's clock); with a version id, that version goes for good. Raises
    NoSuchBucket; a missing key is not an error.
    """
    result = await ctx.meta.delete_version(bucket, key, version_id, marker_id=ctx.hlc.next())
    removed = result.removed
    if removed is not None and not removed.delete_marker:
        ctx.background(collect_version(ctx, removed))
    return result
