"""UploadPart and UploadPartCopy: one part of a multipart upload, streamed to its own blob.

A part is written exactly like a PutObject body: verified as it flows (``BodyStream``, or
``SourceStream`` for a copy, which reads the source's replicas with ``read_range``), to N
nodes of its own placement (the ring's choice for (bucket, the part's version id), so the
parts of one object spread over the cluster), W durable acknowledgements, then the part is
recorded by the metadata service. Only then is it answered. A part uploaded again under
the same number replaces the old one, whose blobs are deleted after the answer; a part
whose upload was completed or aborted meanwhile is refused (NoSuchUpload) and its blobs
deleted. Memory is bounded by the data path's queues, never by the part size.
"""
from __future__ import annotations

import re
import time
from typing import AsyncIterator, Mapping

from aiohttp import web

from gateway.auth.checksums import HEADER_PREFIX, DIGEST_SIZES, make_checksum
from gateway.auth.sigv4 import AuthContext
from gateway.context import CTX_KEY, GatewayContext
from gateway.datapath.body import BodyStream, declared_size
from gateway.datapath.garbage import collect_parts
from gateway.datapath.reader import read_range
from gateway.datapath.replicate import delete_blobs, write_replicas
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.copy import (
    SourceStream, check_copy_conditions, copy_source_headers, parse_copy_source, respond_with_keepalive,
    single_part_md5, source_lookup,
)
from gateway.middleware import AUTH_KEY, ENDPOINT_KEY, OWNER_KEY
from gateway.xml import document, el, iso8601
from metadata.api.upload_client import UploadClient
from metadata.api.upload_records import MAX_PART_NUMBER, MAX_PART_SIZE, MultipartUpload, UploadedPart
from objstore.errors import (
    AccessDenied, EntityTooLarge, InsufficientReplicas, InvalidArgument, InvalidRequest, ObjstoreError,
)
from objstore.naming import validate_key
from objstore.types import NodeInfo, PartRef, Policy

CHECKSUM_ELEMENTS = {"crc32": "ChecksumCRC32", "crc32c": "ChecksumCRC32C", "crc64nvme": "ChecksumCRC64NVME",
                     "sha1": "ChecksumSHA1", "sha256": "ChecksumSHA256"}
_SOURCE_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d+)$")


def part_number(query: Mapping[str, str]) -> int:
    """The ``partNumber`` query value; InvalidArgument unless an integer in 1..10000."""
    raw = query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise InvalidArgument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                              ArgumentName="partNumber", ArgumentValue=raw)
    return int(raw)


def source_range(header: str | None, size: int) -> tuple[int, int]:
    """Inclusive (first, last) of ``x-amz-copy-source-range`` (the whole source without it).

    Raises InvalidArgument unless it is ``bytes=first-last`` inside the source.
    """
    if header is None:
        return 0, size - 1
    m = _SOURCE_RANGE_RE.match(header.strip()) if len(header) < 1000 else None  # int() refuses 4300+ digits
    if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) >= size:
        raise InvalidArgument(f"Range specified is not valid for source object of size: {size}",
                              ArgumentName="x-amz-copy-source-range", ArgumentValue=header)
    return int(m.group(1)), int(m.group(2))


def sent_checksum_algorithms(headers: Mapping[str, str]) -> list[str]:
    """Algorithms of the ``x-amz-checksum-<alg>`` values (or trailers) a part was sent with."""
    names = [k.lower() for k in headers]
    names += [t.strip().lower() for t in headers.get("x-amz-trailer", "").split(",") if t.strip()]
    return [n[len(HEADER_PREFIX):] for n in names
            if n.startswith(HEADER_PREFIX) and n[len(HEADER_PREFIX):] in DIGEST_SIZES]


def check_part_checksum(upload: MultipartUpload, sent: list[str]) -> None:
    """An upload created with a checksum algorithm takes parts with that one (or none:
    the gateway computes it); InvalidRequest for a different one."""
    alg = upload.checksum_algorithm
    if alg and sent and alg not in sent:
        raise InvalidRequest(f"Checksum Type mismatch occurred, expected checksum Type: {alg}, "
                             f"actual checksum Type: {sent[0]}")


class _Summed:
    """Chunks passed through, with a running checksum of one algorithm."""

    def __init__(self, chunks: AsyncIterator[bytes], algorithm: str) -> None:
        self._chunks = chunks
        self.checksum = make_checksum(algorithm) if algorithm else None

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            if self.checksum is not None:
                self.checksum.update(chunk)
            yield chunk

    def value(self) -> str | None:
        return None if self.checksum is None else self.checksum.b64digest()


async def _upload_for(request: web.Request) -> tuple[GatewayContext, MultipartUpload, int]:
    """The upload a part request names, if the caller owns it; and the part number."""
    ctx: GatewayContext = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    q = request.rel_url.query
    number = part_number(q)
    validate_key(ep.key)
    await owned_bucket(request, ep.bucket, cached=True)
    upload = await UploadClient(ctx.meta).get(ep.bucket, ep.key, q["uploadId"])
    if upload.owner != request[OWNER_KEY]:
        raise AccessDenied(BucketName=ep.bucket)
    return ctx, upload, number


async def write_part(
    ctx: GatewayContext, upload: MultipartUpload, number: int, size: int, chunks: AsyncIterator[bytes],
) -> tuple[str, list[NodeInfo]]:
    """Stream a part to a new blob on its own placement; (its version id, the holders)."""
    policy = Policy.parse(upload.policy)
    version_id = ctx.hlc.next()
    nodes = await ctx.topology.place(upload.bucket, version_id, policy.n)
    quorum = min(policy.default_write_quorum(), policy.n)
    if len(nodes) < quorum:
        raise InsufficientReplicas(f"Only {len(nodes)} storage nodes are reachable; {quorum} are required.")
    stored = await write_replicas(
        ctx.storage, ctx.topology, nodes, version_id=version_id, bucket=upload.bucket, key=upload.key,
        policy=str(policy), size=size, chunks=chunks, write_quorum=quorum,
    )
    return version_id, [n for n in nodes if n.node_id in stored]


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


async def handle_upload_part(request: web.Request) -> web.Response:
    auth: AuthContext = request[AUTH_KEY]
    size = declared_size(request, auth)
    if size > MAX_PART_SIZE:
        raise EntityTooLarge(ProposedSize=size, MaxSizeAllowed=MAX_PART_SIZE)
    ctx, upload, number = await _upload_for(request)
    check_part_checksum(upload, sent_checksum_algorithms(request.headers))
    body = BodyStream(request, auth, size)
    summed = _Summed(body.chunks(), upload.checksum_algorithm)
    version_id, holders = await write_part(ctx, upload, number, size, summed.chunks())
    ctx.metrics.add_bytes_in(size)
    checksums = dict(body.checksum_values)
    if summed.value() is not None:
        checksums[upload.checksum_algorithm] = summed.value()  # type: ignore[assignment]
    ref = PartRef(number, version_id, size, body.etag, tuple(n.node_id for n in holders), checksums)
    await commit_part(ctx, upload, UploadedPart(ref, time.time()), holders)
    headers = {"ETag": f'"{ref.etag}"'}
    for alg, value in checksums.items():
        headers[f"x-amz-checksum-{alg}"] = value
    return web.Response(status=200, headers=headers)


async def handle_upload_part_copy(request: web.Request) -> web.StreamResponse:
    h = request.headers
    ctx, upload, number = await _upload_for(request)
    src = parse_copy_source(h["x-amz-copy-source"])
    found = await source_lookup(request, src)
    v = found.version
    check_copy_conditions(h, v.etag, v.last_modified)
    if v.size == 0 and "x-amz-copy-source-range" not in h:
        first, last = 0, -1
    else:
        first, last = source_range(h.get("x-amz-copy-source-range"), v.size)
    size = last - first + 1
    if size > MAX_PART_SIZE:
        raise InvalidRequest("The specified copy source is larger than the maximum allowable size for a copy "
                             f"source: {MAX_PART_SIZE}")
    headers = copy_source_headers(found)
    whole = first == 0 and size == v.size

    async def copy() -> bytes:
        algs = [upload.checksum_algorithm] if upload.checksum_algorithm else []
        stream = SourceStream(read_range(ctx.storage, ctx.topology, v, first, last), size,
                              single_part_md5(v.etag) if whole else None, algs)
        version_id, holders = await write_part(ctx, upload, number, size, stream.chunks())
        checksums = stream.checksum_values
        ref = PartRef(number, version_id, size, stream.etag, tuple(n.node_id for n in holders), checksums)
        part = UploadedPart(ref, time.time())
        await commit_part(ctx, upload, part, holders)
        out = [el("LastModified", iso8601(part.last_modified)), el("ETag", f'"{ref.etag}"')]
        out += [el(CHECKSUM_ELEMENTS[a], val) for a, val in checksums.items() if a in CHECKSUM_ELEMENTS]
        return document("CopyPartResult", out)

    return await respond_with_keepalive(request, copy(), headers)
