"""PutObject: stream the body to the placement nodes, then commit the version record.

Order of work, which is what makes a PUT atomic to readers:
1. validate the request (key, size, headers) — nothing is written for a bad request;
2. stream the body to N nodes, verified as it flows (``BodyStream``), and wait for W
   durable acknowledgements;
3. commit the version record (with the nodes that hold it) through the metadata service;
4. answer. A crash before 3 leaves only unreferenced blobs, never a visible partial object.
The blobs of the version this one replaced (the key's previous null version; none in a
bucket with versioning Enabled) are deleted after the answer.

Conditional writes (``If-None-Match: *``: create only; ``If-Match: <etag>``: replace only
that object) are checked by the metadata service when the record commits, atomically with
the write; a refused write's blobs are deleted. ``x-amz-tagging`` (URL query form) sets the
new version's tags. The answer carries ``x-amz-version-id`` when the bucket has versioning
configured.
"""
from __future__ import annotations

import time
from typing import AsyncIterator, Sequence

from aiohttp import web

from gateway.auth.sigv4 import AuthContext
from gateway.context import CTX_KEY, GatewayContext
from gateway.datapath.body import BodyStream, declared_size
from gateway.datapath.replicate import delete_blobs, write_replicas
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.tagging import parse_tagging_header
from gateway.middleware import AUTH_KEY, ENDPOINT_KEY, OWNER_KEY
from metadata.api.results import WriteResult
from objstore.errors import EntityTooLarge, InsufficientReplicas, NotImplementedOp, ObjstoreError
from objstore.naming import validate_key
from objstore.types import NodeInfo, ObjectVersion, Policy

MAX_PUT_SIZE = 5 * 1024**3  # S3's limit for a single PUT
STORED_HEADERS = ("content-encoding", "content-disposition", "cache-control", "expires", "content-language")


def stored_headers(request: web.Request) -> tuple[str, dict[str, str], dict[str, str]]:
    """(content type, the standard headers kept with the object, user metadata)."""
    h = request.headers
    content_type = h.get("Content-Type") or "binary/octet-stream"
    kept: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = h.get(name)
        if value is None:
            continue
        if name == "content-encoding":
            codings = [c.strip() for c in value.split(",") if c.strip() and c.strip() != "aws-chunked"]
            if not codings:
                continue
            value = ", ".join(codings)
        kept[name] = value
    meta = {k.lower()[len("x-amz-meta-"):]: v for k, v in h.items() if k.lower().startswith("x-amz-meta-")}
    return content_type, kept, meta


async def handle_put_object(request: web.Request) -> web.Response:
    ctx: GatewayContext = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    auth: AuthContext = request[AUTH_KEY]
    if_match, if_none_match = write_conditions(request)
    tags = parse_tagging_header(request.headers.get("x-amz-tagging", ""))
    validate_key(ep.key)
    size = declared_size(request, auth)
    if size > MAX_PUT_SIZE:
        raise EntityTooLarge(
            f"Your proposed upload of {size} bytes exceeds the maximum of {MAX_PUT_SIZE} for a single PUT.",
            ProposedSize=size,
            MaxSizeAllowed=MAX_PUT_SIZE,
        )
    content_type, kept, user_meta = stored_headers(request)
    bucket = await owned_bucket(request, ep.bucket, cached=True)
    policy = Policy.parse(bucket.policy)
    body = BodyStream(request, auth, size)
    version_id, holders = await write_blob(ctx, ep.bucket, ep.key, policy, size, body.chunks())
    ctx.metrics.add_bytes_in(size)
    record = ObjectVersion(
        bucket=ep.bucket,
        key=ep.key,
        version_id=version_id,
        size=size,
        etag=body.etag,
        last_modified=time.time(),
        content_type=content_type,
        headers=kept,
        user_meta=user_meta,
        policy=str(policy),
        placement=tuple(n.node_id for n in holders),
        ring_epoch=ctx.topology.map.epoch,
        checksums=body.checksum_values,
        owner=request[OWNER_KEY],
        tags=tags,
    )
    result = await commit_version(ctx, record, holders, if_match=if_match, if_none_match=if_none_match)
    headers = {"ETag": f'"{body.etag}"', **result.version_header()}
    for alg, value in body.checksum_values.items():
        headers[f"x-amz-checksum-{alg}"] = value
    return web.Response(status=200, headers=headers)


async def write_blob(
    ctx: GatewayContext, bucket: str, key: str, policy: Policy, size: int, chunks: AsyncIterator[bytes],
    version_id: str | None = None,
) -> tuple[str, list[NodeInfo]]:
    """Place a new blob of ``size`` bytes for (bucket, key) and stream ``chunks`` to it.

    Returns (the version id, a new one unless given, and the nodes holding the blob
    durably, in placement order).
    Raises InsufficientReplicas below the write quorum, or the error ``chunks`` raised
    (then no node holds a complete blob).
    """
    nodes = await ctx.topology.place(bucket, key, policy.n)
    quorum = min(policy.default_write_quorum(), policy.n)
    if len(nodes) < quorum:
        raise InsufficientReplicas(f"Only {len(nodes)} storage nodes are reachable; {quorum} are required.")
    version_id = version_id or ctx.hlc.next()
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


def write_conditions(request: web.Request) -> tuple[str | None, bool]:
    """(If-Match value, If-None-Match: * given) of a write. Any If-None-Match value but
    ``*`` is 501 NotImplemented, as S3 answers."""
    inm = request.headers.get("If-None-Match")
    if inm is not None and inm.strip() != "*":
        raise NotImplementedOp("A header you provided implies functionality that is not implemented",
                               Header="If-None-Match")
    return request.headers.get("If-Match"), inm is not None


async def commit_version(
    ctx: GatewayContext, record: ObjectVersion, holders: Sequence[NodeInfo], *,
    if_match: str | None = None, if_none_match: bool = False,
) -> WriteResult:
    """Commit ``record`` (whose blob ``holders`` store), under the write conditions given;
    returns what the write did (its S3 version id; the version it replaced, if any).

    The replaced version's blobs are collected after the answer. On a definite refusal
    (4xx: a failed condition, too) the new blobs are deleted and the error re-raised; after
    an ambiguous failure they stay for garbage collection to decide.
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


async def collect_version(ctx: GatewayContext, version: ObjectVersion) -> None:
    """Delete the blobs of a version no record points to any more (one per part for a
    multipart object: ``version.blob_refs()``)."""
    for version_id, placement in version.blob_refs():
        nodes = [n for n in (ctx.topology.node(i) for i in placement) if n is not None]
        await delete_blobs(ctx.storage, nodes, version_id)
