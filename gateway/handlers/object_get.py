"""GetObject and HeadObject: the version record from the metadata service, bytes from replicas.

Ranges follow RFC 9110 as S3 applies it: one range ``bytes=a-b``, ``bytes=a-`` or
``bytes=-n``; an unsatisfiable range is 416 InvalidRange; a syntactically invalid or
multi-range header is ignored (the whole object, 200). Conditional headers are evaluated
in S3's order: If-Match (412), If-Unmodified-Since (412), If-None-Match (304),
If-Modified-Since (304).

``versionId`` reads that version ("null": the null version). A current version that is a
delete marker is 404 NoSuchKey, a delete marker asked for by id 405 MethodNotAllowed, both
with ``x-amz-delete-marker: true``. Answers carry ``x-amz-version-id`` when the bucket has
versioning configured, and ``x-amz-tagging-count`` when the version has tags.

Consistency (``x-objstore-consistency`` or the bucket's default; see :mod:`gateway.consistency`):
``strong`` finds the version through the metadata service; ``quorum`` and ``one`` through
commit manifests on the key's ring nodes (:mod:`gateway.datapath.quorum_read`); the answer
says which served it.
"""
from __future__ import annotations

import logging
import re

from aiohttp import web

from gateway.anonymous import is_anonymous_caller
from gateway.caller import CALLER_KEY
from gateway.consistency import CONSISTENCY_HEADER, read_level
from gateway.conditions import etag_matches, parse_http_date
from gateway.context import GatewayContext
from gateway.datapath.part_read import part_headers, part_range, requested_part
from gateway.datapath.quorum_read import manifest_lookup
from gateway.datapath.reader import read_range, read_small
from gateway.endpoints import ReadEndpoint
from gateway.public_access import readable_version
from gateway.raw_headers import to_sent
from gateway.xml import http_date
from metadata.api.results import ObjectLookup
from objstore.errors import InvalidRange, PreconditionFailed, ServiceUnavailable
from objstore.types import ObjectVersion

log = logging.getLogger(__name__)

WHOLE_BODY_LIMIT = 256 * 1024  # GET bodies up to this size are sent in one write
_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a satisfiable range; None for no/ignored range.

    Raises InvalidRange when the range is well-formed but not satisfiable.
    """
    if not header:
        return None
    m = _RANGE_RE.match(header.strip()) if len(header) < 1000 else None  # int() refuses 4300+ digits
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # invalid syntax: ignored, as S3 does
        if start >= size:
            raise InvalidRange(RangeRequested=header, ActualObjectSize=size)
        return start, min(end, size - 1)
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise InvalidRange(RangeRequested=header, ActualObjectSize=size)
    return max(0, size - suffix), size - 1


def check_conditions(request: web.Request, v: ObjectVersion) -> int | None:
    """Raise 412 PreconditionFailed, or return 304 when the client's copy is current."""
    h = request.headers
    modified = int(v.last_modified)
    if_match = h.get("If-Match")
    if if_match is not None and not etag_matches(if_match, v.etag):
        raise PreconditionFailed(Condition="If-Match")
    ius = parse_http_date(h.get("If-Unmodified-Since"))
    if if_match is None and ius is not None and modified > ius:
        raise PreconditionFailed(Condition="If-Unmodified-Since")
    inm = h.get("If-None-Match")
    if inm is not None and etag_matches(inm, v.etag):
        return 304
    ims = parse_http_date(h.get("If-Modified-Since"))
    if inm is None and ims is not None and modified <= ims:
        return 304
    return None


def object_headers(v: ObjectVersion, request: web.Request, ep: ReadEndpoint, ranged: bool = False) -> dict[str, str]:
    """Headers describing the object; whole-object checksums only when the whole body is sent."""
    headers = {
        "ETag": f'"{v.etag}"',
        "Last-Modified": http_date(v.last_modified),
        "Content-Type": v.content_type,
        "Accept-Ranges": "bytes",
    }
    for name, value in v.headers.items():
        headers[name.title()] = value
    for name, value in v.user_meta.items():
        headers[f"x-amz-meta-{name}"] = to_sent(value)
    if v.tags:
        headers["x-amz-tagging-count"] = str(len(v.tags))
    if not ranged and request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        for alg, value in v.checksums.items():
            headers[f"x-amz-checksum-{alg}"] = value
    headers.update(ep.response_headers)
    return headers


async def _find(ctx: GatewayContext, request: web.Request, ep: ReadEndpoint) -> tuple[ObjectLookup, dict[str, str]]:
    """The version to serve at the read's consistency level, and the headers naming the level.

    ``quorum`` and ``one`` read commit manifests (:mod:`gateway.datapath.quorum_read`) for the
    bucket's owner; anyone else is judged on fresh records, so reads strongly."""
    caller = request[CALLER_KEY]
    bucket = await ctx.bucket(ep.bucket)
    level = read_level(request.headers, bucket.consistency)
    if level != "strong" and not is_anonymous_caller(caller) and caller.owner == bucket.owner:
        got = await manifest_lookup(ctx, bucket, ep.key, ep.version_id, level, request.method)
        return got.found, {CONSISTENCY_HEADER: level, **got.headers}
    try:
        ctx.require_metadata()
        found = await readable_version(ctx, caller, ep.bucket, ep.key, ep.version_id, request.method)
    except ServiceUnavailable:
        ctx.outage.note()  # no metadata majority: the caches serve stale records meanwhile
        raise
    return found, {CONSISTENCY_HEADER: "strong"}


async def _resolve(ctx: GatewayContext, request: web.Request, ep: ReadEndpoint
                   ) -> tuple[ObjectVersion, tuple[int, int] | None, dict[str, str], web.Response | None]:
    """(version, byte range or None, response headers, a 304 answer when not modified)."""
    found, level_headers = await _find(ctx, request, ep)
    v = found.version
    part = requested_part(ep.part_number, request.headers, v)
    rng = parse_range(request.headers.get("Range"), v.size) if part is None else part_range(part)
    headers = object_headers(v, request, ep, ranged=rng is not None)
    headers.update(found.version_header())
    headers.update(part_headers(part))
    headers.update(level_headers)
    if check_conditions(request, v) == 304:
        not_modified = {"ETag": headers["ETag"], "Last-Modified": headers["Last-Modified"]}
        return v, rng, headers, web.Response(status=304, headers=not_modified)
    return v, rng, headers, None


async def handle_head_object(ctx: GatewayContext, request: web.Request, ep: ReadEndpoint) -> web.Response:
    v, rng, headers, not_modified = await _resolve(ctx, request, ep)
    if not_modified is not None:
        return not_modified
    if rng is not None:
        headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{v.size}"
        headers["Content-Length"] = str(rng[1] - rng[0] + 1)
        return web.Response(status=206, headers=headers)
    headers["Content-Length"] = str(v.size)
    return web.Response(status=200, headers=headers)


async def handle_get_object(ctx: GatewayContext, request: web.Request, ep: ReadEndpoint) -> web.StreamResponse:
    v, rng, headers, not_modified = await _resolve(ctx, request, ep)
    if not_modified is not None:
        return not_modified
    status = 200
    start, end = 0, v.size - 1
    if rng is not None:
        status = 206
        start, end = rng
        headers["Content-Range"] = f"bytes {start}-{end}/{v.size}"
    length = end - start + 1
    if length <= 0:
        headers["Content-Length"] = "0"
        return web.Response(status=status, headers=headers)
    if length <= WHOLE_BODY_LIMIT:
        # Small bodies are read whole (from any replica, with failover) and sent with the
        # headers in one write; a failure is still a clean S3 error.
        body = await read_small(ctx.storage, ctx.topology, v, start, end, ctx.damage.note)
        if body is None:
            body = b"".join([chunk async for chunk in read_range(ctx.storage, ctx.topology, v, start, end,
                                                                 ctx.damage.note)])
        ctx.metrics.add_bytes_out(len(body))
        return web.Response(status=status, headers=headers, body=body)
    stream = read_range(ctx.storage, ctx.topology, v, start, end, ctx.damage.note)
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = length
    # Fetch the first chunk before sending headers, so a failure to read any replica
    # is still a clean S3 error rather than a broken 200.
    first = await stream.__anext__()
    await resp.prepare(request)
    sent = 0
    try:
        await resp.write(first)
        sent += len(first)
        async for chunk in stream:
            await resp.write(chunk)
            sent += len(chunk)
    except Exception as exc:  # noqa: BLE001 - headers are gone; cut the connection
        log.warning("GET %s/%s failed after %d bytes: %s", v.bucket, v.key, sent, exc)
        if request.transport is not None:
            request.transport.close()
        ctx.metrics.add_bytes_out(sent)
        return resp
    ctx.metrics.add_bytes_out(sent)
    await resp.write_eof()
    return resp
