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
from typing import AsyncIterator, Mapping

from aiohttp import web

from gateway.access import owned_bucket
from gateway.auth.checksums import DIGEST_SIZES, HEADER_PREFIX, make_checksum
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.copy_source import check_copy_conditions, copy_source_headers, parse_copy_source
from gateway.datapath.body import BodyStream, declared_size
from gateway.datapath.lookup import source_lookup
from gateway.datapath.reader import read_range
from gateway.datapath.source_stream import SourceStream, single_part_md5
from gateway.datapath.write import StoredBlob, commit_part, write_blob
from gateway.endpoints import PartEndpoint
from gateway.keepalive import respond_with_keepalive
from gateway.responses import checksum_elements
from gateway.xml import document, el, iso8601
from metadata.api.upload_records import MAX_PART_SIZE, MultipartUpload, UploadedPart
from objstore.errors import AccessDenied, EntityTooLarge, InvalidArgument, InvalidRequest
from objstore.naming import validate_key
from objstore.types import PartRef, Policy

_SOURCE_RANGE_RE = re.compile(r"^bytes=([0-9]+)-([0-9]+)$")


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


async def _upload_for(ctx: GatewayContext, request: web.Request, ep: PartEndpoint) -> MultipartUpload:
    """The upload a part request names, if the caller owns it."""
    owner = request[CALLER_KEY].owner
    validate_key(ep.key)
    await owned_bucket(ctx, owner, ep.bucket, cached=True)
    upload = await ctx.uploads.get(ep.bucket, ep.key, ep.upload_id)  # cached: its fields never change
    if upload.owner != owner:
        raise AccessDenied(BucketName=ep.bucket)
    return upload


async def _write_part(ctx: GatewayContext, upload: MultipartUpload, size: int,
                      chunks: AsyncIterator[bytes]) -> StoredBlob:
    """Stream a part to a new blob on its own placement, under its bucket's write quorum."""
    bucket = await owned_bucket(ctx, upload.owner, upload.bucket, cached=True)
    return await write_blob(ctx, upload.bucket, upload.key, Policy.parse(upload.policy), size, chunks, spread=True,
                            bucket_quorum=bucket.write_quorum)


async def handle_upload_part(ctx: GatewayContext, request: web.Request, ep: PartEndpoint) -> web.Response:
    auth = request[CALLER_KEY].auth
    size = declared_size(request, auth)
    if size > MAX_PART_SIZE:
        raise EntityTooLarge(ProposedSize=size, MaxSizeAllowed=MAX_PART_SIZE)
    upload = await _upload_for(ctx, request, ep)
    check_part_checksum(upload, sent_checksum_algorithms(request.headers))
    body = BodyStream(request, auth, size)
    summed = _Summed(body.chunks(), upload.checksum_algorithm)
    stored = await _write_part(ctx, upload, size, summed.chunks())
    ctx.metrics.add_bytes_in(size)
    checksums = dict(body.checksum_values)
    if summed.value() is not None:
        checksums[upload.checksum_algorithm] = summed.value()  # type: ignore[assignment]
    ref = PartRef(ep.part_number, stored.version_id, size, body.etag, stored.placement, checksums)
    await commit_part(ctx, upload, UploadedPart(ref, ctx.clock()))
    headers = {"ETag": f'"{ref.etag}"'}
    for alg, value in checksums.items():
        headers[f"x-amz-checksum-{alg}"] = value
    return web.Response(status=200, headers=headers)


async def handle_upload_part_copy(ctx: GatewayContext, request: web.Request, ep: PartEndpoint) -> web.StreamResponse:
    h = request.headers
    upload = await _upload_for(ctx, request, ep)
    src = parse_copy_source(h["x-amz-copy-source"])
    found = await source_lookup(ctx, request[CALLER_KEY].owner, src)
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
        stream = SourceStream(read_range(ctx.storage, ctx.topology, v, first, last, ctx.damage.note), size,
                              single_part_md5(v.etag) if whole else None, algs)
        stored = await _write_part(ctx, upload, size, stream.chunks())
        checksums = stream.checksum_values
        ref = PartRef(ep.part_number, stored.version_id, size, stream.etag, stored.placement, checksums)
        part = UploadedPart(ref, ctx.clock())
        await commit_part(ctx, upload, part)
        out = [el("LastModified", iso8601(part.last_modified)), el("ETag", f'"{ref.etag}"')]
        out += checksum_elements(checksums)
        return document("CopyPartResult", out)

    return await respond_with_keepalive(request, copy(), headers)
