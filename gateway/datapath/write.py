"""The write steps every writing handler shares: stream a new blob to its replicas (or its
shards, for an ``ec:K+M`` policy), commit its record, collect what it replaced; and the one
delete path.

Order, which is what makes a write atomic to readers: the blob is durable on a write
quorum of nodes (:func:`write_blob`) before its record commits (:func:`commit_version`,
:func:`commit_part`); a crash in between leaves only unreferenced blobs. After a version
or a delete commits, and before the client is answered, its commit manifest goes to the
key's ring nodes (:mod:`gateway.datapath.manifests`), for quorum and one reads.

The blobs of a version replaced by a write, or removed by a delete, are *not* deleted
here: a GET may still be streaming from them. They are orphans, which the storage nodes'
garbage collection deletes once its grace period has passed (:mod:`objstore.node.gc`).
The metadata service refuses to commit a version whose id is older than half that grace
(S3 RequestTimeout), so no commit can reference a collected blob. On a definite refusal
of a commit (4xx) the new blobs are deleted at once (nothing can reference them); after
an ambiguous failure (5xx) they stay for garbage collection to decide. Parts replaced
within an upload, or left out of a completed one, are deleted after the answer: no GET
reads them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import AsyncIterator

from gateway.consistency import COMMIT_INDEX_HEADER, NO_OVERLAP_HEADER, REPLICAS_WRITTEN_HEADER
from gateway.context import GatewayContext
from gateway.datapath.body import COALESCE
from gateway.datapath.manifests import publish
from gateway.datapath.offload import BATCH
from gateway.datapath.record_change import current_version
from gateway.datapath.erasure_write import write_shards
from gateway.datapath.garbage import collect_parts, delete_placed
from gateway.datapath.replicate import write_replicas
from metadata.api.results import DeleteResult, WriteResult
from metadata.api.upload_client import UploadClient
from metadata.api.upload_records import MultipartUpload, UploadedPart
from objstore.errors import InsufficientReplicas, ObjstoreError, ServiceUnavailable
from objstore.erasure.data_layout import DataLayout
from objstore.erasure.layout import StripeLayout
from objstore.manifest import quorums_overlap
from objstore.types import ObjectVersion, Policy


SMALL_EC_OBJECT = 64 * 1024  # an ec bucket stores smaller objects as replica:M+1
LARGE_EC_OBJECT = 8 * 1024 * 1024  # an ec object from this size is coded in LARGE_STRIPE stripes
LARGE_STRIPE = BATCH  # one coding job's bytes: for K=4, each data shard one 1 MiB body chunk


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A new blob, durable on a write quorum: what its record must say about it.

    ``policy`` is the record's policy string (``DataLayout``: ``ec:K+M;stripe=B``, or the
    replica policy the blob was stored with); ``placement`` the node ids holding it in
    placement order, for ``ec`` shard i's node at index i ("" where no node stored it).
    """

    version_id: str
    policy: str
    placement: tuple[str, ...]


def stored_layout(policy: Policy, size: int, *, part: bool = False) -> DataLayout:
    """How a new blob of ``size`` bytes under the bucket policy ``policy`` is stored.

    An ``ec:K+M`` object below ``SMALL_EC_OBJECT`` bytes is stored as ``replica:M+1`` (the
    same loss tolerance; K+M tiny shards would cost more than they save). One of
    ``LARGE_EC_OBJECT`` bytes or more is coded in ``LARGE_STRIPE`` stripes when each of its
    data shards is then exactly one body chunk (``COALESCE``; K=4), so a coding job is one
    stripe coded from the chunks as they are: fewer, larger pieces per node, which cost
    the storage nodes and the gateway less CPU per byte than 1 MiB stripes (its record
    says so). Other K keep 1 MiB stripes (a larger one would go through the encoder's
    stripe buffer, one more copy). Parts of a multipart upload are always coded with the
    default stripe: a part's record has no policy of its own, readers take the upload's.
    """
    if policy.kind == "ec" and not part:
        if size < SMALL_EC_OBJECT:
            return DataLayout(Policy("replica", policy.m + 1))
        if size >= LARGE_EC_OBJECT and StripeLayout(policy.k, policy.m, LARGE_STRIPE).shard_size == COALESCE:
            return DataLayout.for_policy(policy, LARGE_STRIPE)
    return DataLayout.for_policy(policy)


def write_quorum(policy: Policy, bucket_quorum: int, layout: DataLayout) -> int:
    """W for a new blob stored as ``layout`` in a bucket of ``policy`` whose record asks for
    ``bucket_quorum`` (0: the default, ``Policy.default_write_quorum``).

    A small object of an ``ec:K+M`` bucket, stored as ``replica:M+1``, may miss as many
    nodes as a coded one would: W - (K+M) + (M+1), never below that policy's default.
    """
    n = layout.policy.n
    if not bucket_quorum:
        return min(layout.policy.default_write_quorum(), n)
    if layout.policy == policy:
        return min(bucket_quorum, n)
    return min(n, max(layout.policy.default_write_quorum(), n - (policy.n - bucket_quorum)))


async def write_blob(
    ctx: GatewayContext, bucket: str, key: str, policy: Policy, size: int, chunks: AsyncIterator[bytes],
    version_id: str | None = None, *, spread: bool = False, bucket_quorum: int = 0,
) -> StoredBlob:
    """Place a new blob of ``size`` bytes for (bucket, key) and stream ``chunks`` to it:
    whole replicas, or K+M shards for an ``ec`` policy (see :func:`stored_layout`).

    The ring places it by key, or with ``spread`` (parts of a multipart upload) by its
    version id, so one object's parts spread over the cluster. The version id is a new one
    unless given. The write quorum is the bucket's (``bucket_quorum``; see
    :func:`write_quorum`). Raises InsufficientReplicas below it, or the error ``chunks``
    raised (then no node holds a complete blob).
    """
    version_id = version_id or ctx.hlc.next()
    layout = stored_layout(policy, size, part=spread)
    n = layout.policy.n
    place_key = version_id if spread else key
    nodes = await ctx.topology.place(bucket, place_key, n)
    quorum = write_quorum(policy, bucket_quorum, layout)
    if len(nodes) < quorum:
        raise InsufficientReplicas(f"Only {len(nodes)} storage nodes are reachable; {quorum} are required.")
    bounds = {"straggler": ctx.cfg.straggler_timeout_seconds,
              "handoff": lambda used: ctx.topology.handoff(bucket, place_key, n, used), "blobs": ctx.blob_lanes}
    if layout.erasure_coded:
        placement = await write_shards(ctx.storage, ctx.topology, nodes, layout=layout, version_id=version_id,
                                       bucket=bucket, key=key, size=size, chunks=chunks, write_quorum=quorum,
                                       **bounds)
        return StoredBlob(version_id, str(layout), placement)
    stored = await write_replicas(
        ctx.storage,
        ctx.topology,
        nodes,
        version_id=version_id,
        bucket=bucket,
        key=key,
        policy=str(layout),
        size=size,
        chunks=chunks,
        write_quorum=quorum,
        **bounds,
    )
    return StoredBlob(version_id, str(layout), tuple(stored))


async def commit_version(
    ctx: GatewayContext, record: ObjectVersion, policy: Policy, write_quorum: int, *, if_match: str | None = None,
    if_none_match: bool = False,
) -> WriteResult:
    """Commit ``record`` (whose blob is durable on its placement), under the write
    conditions given, then publish its commit manifest (:func:`publish_version`); returns
    what the write did (its S3 version id; the version it replaced, if any; its commit index).

    The replaced version's blobs are left to garbage collection; see the module docstring
    for what a refusal does.
    """
    try:
        result = await ctx.meta.put_version(record, if_match=if_match, if_none_match=if_none_match)
    except ObjstoreError as err:
        if err.status < 500:
            ctx.background(collect_version(ctx, record))
        elif isinstance(err, ServiceUnavailable):
            ctx.outage.note()
        raise
    versioned = result.versioning == "Enabled"
    committed = record if record.versioned == versioned else dataclasses.replace(record, versioned=versioned)
    await publish_version(ctx, committed, result.commit_index, policy, write_quorum, result.map_epoch)
    return result


async def publish_version(ctx: GatewayContext, version: ObjectVersion, commit_index: int, policy: Policy,
                          write_quorum: int, map_epoch: int = 0) -> int:
    """Write the commit manifest of ``version`` (committed at ``commit_index``, map epoch
    ``map_epoch``, as its key's current version) to the key's ring nodes, before the client
    is answered; raises ServiceUnavailable when too few stored it
    (:func:`gateway.datapath.manifests.publish`)."""
    return await publish(ctx, version.bucket, version.key, commit_index, version, policy, write_quorum,
                         map_epoch=map_epoch)


def write_headers(commit_index: int, version: ObjectVersion, policy: Policy, bucket_quorum: int,
                  write_quorum: int) -> dict[str, str]:
    """The headers of an acknowledged write: how many replicas (or shards) stored its data
    (for a multipart object, its least stored part's count), the Raft index its version
    committed at, and ``x-objstore-quorum-overlap: false`` when its W is too small for the
    bucket's quorum reads to be sure to see it (R + W <= N)."""
    written = min((sum(1 for n in placement if n) for _vid, placement in version.blob_refs()), default=0)
    headers = {REPLICAS_WRITTEN_HEADER: str(written), COMMIT_INDEX_HEADER: str(commit_index)}
    if not quorums_overlap(policy, bucket_quorum, write_quorum):
        headers[NO_OVERLAP_HEADER] = "false"
    return headers


async def commit_part(ctx: GatewayContext, upload: MultipartUpload, part: UploadedPart) -> None:
    """Record ``part``; collect the part it replaced. On a definite refusal (the upload is
    gone) the new blobs are deleted and the error re-raised."""
    try:
        replaced = await UploadClient(ctx.meta).put_part(upload.bucket, upload.key, upload.upload_id, part)
    except ObjstoreError as err:
        if err.status < 500:
            ctx.background(collect_parts(ctx.storage, ctx.topology, [part.part], upload.policy))
        raise
    if replaced is not None:
        ctx.background(collect_parts(ctx.storage, ctx.topology, [replaced], upload.policy))


async def collect_version(ctx: GatewayContext, version: ObjectVersion) -> None:
    """Delete the blobs of a version no record points to any more (one per part for a
    multipart object: ``version.blob_refs()``)."""
    for version_id, placement in version.blob_refs():
        await delete_placed(ctx.storage, ctx.topology, version_id, placement, version.policy)


async def delete_key(ctx: GatewayContext, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
    """Delete ``key`` (or one version of it) from ``bucket``; the caller checked ownership.

    The one delete path: DeleteObject and each key of DeleteObjects call it. What it does
    depends on the bucket's versioning (decided by the metadata service, atomically):
    unversioned, the key's record goes; versioned, a delete marker is added (its id from
    this gateway's clock); with a version id, that version goes for good (its blobs are
    then orphans for garbage collection, like a replaced version's). Raises NoSuchBucket;
    a missing key is not an error.
    """
    marker_id, now = ctx.hlc.next(), ctx.clock()
    result = await ctx.meta.delete_version(bucket, key, version_id, marker_id=marker_id, now=now)
    await publish_delete(ctx, bucket, key, version_id, result, marker_id, now)
    return result


async def publish_delete(ctx: GatewayContext, bucket: str, key: str, version_id: str | None, result: DeleteResult,
                         marker_id: str, now: float) -> None:
    """Write the tombstone manifest of a delete: no current version (unversioned), the
    delete marker it added, or, for a version removed by id, the key's current version
    read back from the metadata service (with the delete's commit index). Raises
    ServiceUnavailable when too few manifest replicas stored it."""
    b = await ctx.bucket(bucket)
    current: ObjectVersion | None = None
    if version_id is not None:
        current = await current_version(ctx, b, key)
    elif result.delete_marker:
        current = ObjectVersion(bucket=bucket, key=key, version_id=marker_id, size=0, etag="", last_modified=now,
                                owner=b.owner, delete_marker=True, versioned=result.versioning == "Enabled")
    removed = version_id or ("null" if result.removed is not None else "")
    await publish(ctx, bucket, key, result.commit_index, current, Policy.parse(b.policy), b.write_quorum, removed,
                  map_epoch=result.map_epoch)
