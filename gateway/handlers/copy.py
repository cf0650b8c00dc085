"""CopyObject: a new object whose bytes stream from another object's replicas.

``PUT /dst-bucket/dst-key`` with ``x-amz-copy-source: [/]src-bucket/src-key[?versionId=V]``
(URL-encoded). Order of work:

1. parse the request (copy source, metadata and tagging directives, destination write
   conditions ``If-Match``/``If-None-Match: *``) — pure, nothing read yet;
2. check the caller owns both buckets, look up the source version (current, or the one
   named, "null" included), evaluate the ``x-amz-copy-source-if-*`` conditions (412
   PreconditionFailed), the copy-onto-itself rule and the 5 GiB limit;
3. stream the source's bytes (``read_range``, any replica) into a new blob of the
   destination bucket's policy (``write_blob``). :class:`SourceStream` counts them,
   recomputes the MD5 (the new ETag) and the source's checksums, and holds the last chunk
   back until the length, and for a single-part source the MD5, matched: no node ever
   completes a blob with wrong bytes. Memory is bounded by the data path's queues, never
   by the object size; a multipart source becomes a plain single-part object;
4. commit the version record (``commit_version``: the bucket's versioning decides whether
   it is a new version or the null version; the write conditions are checked atomically)
   and answer CopyObjectResult, with ``x-amz-copy-source-version-id`` and
   ``x-amz-version-id`` when the buckets have versioning configured.

COPY (the default) takes the content type, standard headers, user metadata and tags from
the source; REPLACE takes them from the request (``x-amz-tagging-directive: REPLACE`` with
``x-amz-tagging`` for tags).

A copy still running after ``KEEPALIVE_AFTER`` seconds is answered 200 early and kept
alive with whitespace until the result (or an Error document) follows, as S3 does; SDKs
read an Error inside a 200 CopyObject answer as a failure.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Iterable, Mapping
from urllib.parse import unquote_to_bytes

from aiohttp import web

from gateway.auth.checksums import DIGEST_SIZES, ChecksumSet, normalize_algorithm
from gateway.conditions import etag_matches, parse_http_date
from gateway.context import CTX_KEY, GatewayContext
from gateway.datapath.reader import read_range
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.object_put import commit_version, stored_headers, write_blob, write_conditions
from gateway.handlers.tagging import parse_tagging_header
from gateway.middleware import ENDPOINT_KEY, OWNER_KEY
from gateway.xml import HEADER, document, el, error_document, iso8601
from objstore.errors import (
    AccessDenied,
    InternalError,
    InvalidArgument,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchKey,
    NotImplementedOp,
    ObjstoreError,
    PreconditionFailed,
)
from metadata.api.results import ObjectLookup
from objstore.hlc import is_version_id
from objstore.naming import validate_key
from objstore.types import Bucket, ObjectVersion, Policy

log = logging.getLogger(__name__)

MAX_COPY_SIZE = 5 * 1024**3  # S3's limit for a CopyObject source
KEEPALIVE_AFTER = 10.0  # seconds before a long copy is answered 200 early
KEEPALIVE_INTERVAL = 10.0  # seconds between whitespace bytes while it runs
XML = {"Content-Type": "application/xml"}
_CHECKSUM_ELEMENTS = {"crc32": "ChecksumCRC32", "crc32c": "ChecksumCRC32C", "crc64nvme": "ChecksumCRC64NVME",
                      "sha1": "ChecksumSHA1", "sha256": "ChecksumSHA256"}
# Headers of copies objstore cannot honour (yet); refused rather than ignored.


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str
    version_id: str | None = None


def parse_copy_source(value: str) -> CopySource:
    """Parse ``x-amz-copy-source``; raises InvalidArgument when it names no bucket and key."""
    def bad(message: str = "Copy Source must mention the source bucket and key: sourcebucket/sourcekey") -> InvalidArgument:
        return InvalidArgument(message, ArgumentName="x-amz-copy-source", ArgumentValue=value)

    raw = value.strip()
    if raw.startswith("arn:"):
        raise NotImplementedOp("Copy sources named by access point ARNs are not supported.")
    raw = raw[1:] if raw.startswith("/") else raw
    path, sep, query = raw.partition("?")
    version_id = None
    if sep:
        for item in query.split("&"):
            name, _, v = item.partition("=")
            if name != "versionId":
                raise bad(f"Unsupported copy source parameter '{name}'.")
            version_id = unquote_to_bytes(v).decode("utf-8", "replace")
            if not version_id:
                raise bad("Version id cannot be the empty string")
            if version_id != "null" and not is_version_id(version_id):
                raise bad("Invalid version id specified")
    try:
        decoded = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise bad("Copy Source must be URL-encoded UTF-8.") from None
    bucket, _, key = decoded.partition("/")
    if not bucket or not key:
        raise bad()
    return CopySource(bucket, key, version_id)


def metadata_directive(headers: Mapping[str, str]) -> str:
    """COPY (the default) or REPLACE; raises InvalidArgument for anything else."""
    raw = headers.get("x-amz-metadata-directive")
    if raw is None:
        return "COPY"
    value = raw.strip().upper()
    if value not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown metadata directive.", ArgumentName="x-amz-metadata-directive",
                              ArgumentValue=raw)
    return value


def tagging_directive(headers: Mapping[str, str]) -> str:
    """COPY (the default) or REPLACE; raises InvalidArgument for anything else."""
    raw = headers.get("x-amz-tagging-directive")
    if raw is None:
        return "COPY"
    value = raw.strip().upper()
    if value not in ("COPY", "REPLACE"):
        raise InvalidArgument("Unknown tagging directive.", ArgumentName="x-amz-tagging-directive", ArgumentValue=raw)
    return value


def check_copy_conditions(headers: Mapping[str, str], etag: str, last_modified: float) -> None:
    """Raise PreconditionFailed unless the source satisfies the ``x-amz-copy-source-if-*`` headers.

    As S3: if-match decides over if-unmodified-since, if-none-match over
    if-modified-since; unparseable dates are ignored.
    """
    modified = int(last_modified)
    if_match = headers.get("x-amz-copy-source-if-match")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Match")
    else:
        ius = parse_http_date(headers.get("x-amz-copy-source-if-unmodified-since"))
        if ius is not None and modified > ius:
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Unmodified-Since")
    if_none_match = headers.get("x-amz-copy-source-if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            raise PreconditionFailed(Condition="x-amz-copy-source-If-None-Match")
    else:
        ims = parse_http_date(headers.get("x-amz-copy-source-if-modified-since"))
        if ims is not None and modified <= ims:
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Modified-Since")


class SourceStream:
    """The source's bytes on their way to the new blob, counted and summed.

    ``chunks()`` yields every chunk but the last as it arrives; the last only once the
    total is ``size`` and, when ``expect_md5`` is given, the MD5 matches. Otherwise it
    raises InternalError and the destination blob is never completed.
    """

    def __init__(self, source: AsyncIterator[bytes], size: int, expect_md5: str | None,
                 algorithms: Iterable[str]) -> None:
        self._source = source
        self.size = size
        self._expect_md5 = expect_md5
        self._md5 = hashlib.md5()
        self._sums = ChecksumSet(algorithms)
        self.received = 0

    @property
    def etag(self) -> str:
        return self._md5.hexdigest()

    @property
    def checksum_values(self) -> dict[str, str]:
        return self._sums.b64digests()

    async def chunks(self) -> AsyncIterator[bytes]:
        pending: bytes | None = None
        async for chunk in self._source:
            if not chunk:
                continue
            self.received += len(chunk)
            if self.received > self.size:
                raise InternalError("The copy source returned more bytes than its recorded size.")
            self._md5.update(chunk)
            self._sums.update(chunk)
            if pending is not None:
                yield pending
            pending = chunk
        if self.received != self.size:
            raise InternalError(f"The copy source returned {self.received} of {self.size} bytes.")
        if self._expect_md5 is not None and self._md5.hexdigest() != self._expect_md5:
            raise InternalError("The copy source's bytes do not match its ETag; the copy was not made.")
        if pending is not None:
            yield pending


def single_part_md5(etag: str) -> str | None:
    """The MD5 a body must have for this ETag, or None for a multipart ETag (``<md5>-N``)."""
    return None if "-" in etag else etag


# Fields a copy never inherits: it is one live blob (not parts, not a delete marker), and
# whether it is a versioned or a "null" version is for the metadata service to decide.
_NOT_COPIED = ("delete_marker", "parts", "versioned")


def copied_record(source: ObjectVersion, **changes: object) -> ObjectVersion:
    """``source`` (its type, headers, metadata, tags) with ``changes``, as a new version."""
    reset: dict[str, object] = {}
    for f in dataclasses.fields(ObjectVersion):
        if f.name in _NOT_COPIED:
            reset[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return dataclasses.replace(source, **{**reset, **changes})


_MARKER_BY_ID = "The source of a copy request may not specifically refer to a delete marker by version id."


async def source_lookup(request: web.Request, src: CopySource) -> ObjectLookup:
    """The version to copy (current, or the one named) and its bucket's versioning state,
    if the caller owns the bucket. Raises NoSuchBucket, AccessDenied, NoSuchKey (also for
    a current delete marker), NoSuchVersion, InvalidRequest (a delete marker by id)."""
    return (await _lookup(request, src))[1]


async def _lookup(request: web.Request, src: CopySource) -> tuple[Bucket, ObjectLookup]:
    ctx = request.app[CTX_KEY]
    bucket = await owned_bucket(request, src.bucket)
    try:
        found = await ctx.meta.lookup_object(src.bucket, src.key, src.version_id)
    except NoSuchKey:
        raise NoSuchKey(Key=src.key, BucketName=src.bucket) from None
    except MethodNotAllowed:
        raise InvalidRequest(_MARKER_BY_ID) from None
    if found.version.delete_marker:
        if src.version_id is not None:
            raise InvalidRequest(_MARKER_BY_ID)
        raise NoSuchKey(Key=src.key, BucketName=src.bucket)
    if found.version.owner != request[OWNER_KEY]:
        raise AccessDenied(BucketName=src.bucket)
    return bucket, found


def copy_source_headers(found: ObjectLookup) -> dict[str, str]:
    """``x-amz-copy-source-version-id`` when the source bucket has versioning configured."""
    return {"x-amz-copy-source-version-id": found.version.s3_version_id} if found.versioning else {}


async def _is_current(request: web.Request, bucket: str, key: str, version: ObjectVersion) -> bool:
    try:
        current = await request.app[CTX_KEY].meta.get_object(bucket, key)
    except NoSuchKey:
        return False
    return current.version_id == version.version_id


def predicted_version_header(bucket: Bucket, version_id: str) -> dict[str, str]:
    """The ``x-amz-version-id`` a new version will get, from the bucket's versioning state."""
    if bucket.versioning == "Enabled":
        return {"x-amz-version-id": version_id}
    return {"x-amz-version-id": "null"} if bucket.versioning else {}


async def handle_copy_object(request: web.Request) -> web.StreamResponse:
    ctx: GatewayContext = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    h = request.headers
    validate_key(ep.key)
    src = parse_copy_source(h["x-amz-copy-source"])
    directive = metadata_directive(h)
    new_tags = parse_tagging_header(h.get("x-amz-tagging", "")) if tagging_directive(h) == "REPLACE" else None
    if_match, if_none_match = write_conditions(request)
    algorithm = h.get("x-amz-checksum-algorithm")
    extra_algorithms = [normalize_algorithm(algorithm)] if algorithm else []
    bucket = await owned_bucket(request, ep.bucket, cached=True)
    found = await source_lookup(request, src)
    v = found.version
    onto_itself = (src.bucket, src.key) == (ep.bucket, ep.key) and (
        src.version_id is None or await _is_current(request, src.bucket, src.key, v))
    if onto_itself and directive == "COPY" and new_tags is None:
        raise InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself without changing "
            "the object's metadata, storage class, website redirect location or encryption attributes."
        )
    check_copy_conditions(h, v.etag, v.last_modified)
    if v.size > MAX_COPY_SIZE:
        raise InvalidRequest(
            "The specified copy source is larger than the maximum allowable size for a copy source: "
            f"{MAX_COPY_SIZE}"
        )
    policy = Policy.parse(bucket.policy)
    owner = request[OWNER_KEY]
    version_id = ctx.hlc.next()
    headers = copy_source_headers(found)
    early_headers = {**headers, **predicted_version_header(bucket, version_id)}

    async def copy() -> tuple[bytes, dict[str, str]]:
        stream = SourceStream(read_range(ctx.storage, ctx.topology, v, 0, v.size - 1), v.size,
                              single_part_md5(v.etag), [*(a for a in v.checksums if a in DIGEST_SIZES), *extra_algorithms])
        _, holders = await write_blob(ctx, ep.bucket, ep.key, policy, v.size, stream.chunks(), version_id)
        changes: dict[str, object] = {}
        if directive == "REPLACE":
            changes["content_type"], changes["headers"], changes["user_meta"] = stored_headers(request)
        if new_tags is not None:
            changes["tags"] = new_tags
        record = copied_record(
            v, bucket=ep.bucket, key=ep.key, version_id=version_id, etag=stream.etag,
            last_modified=time.time(), policy=str(policy), placement=tuple(n.node_id for n in holders),
            ring_epoch=ctx.topology.map.epoch, checksums=stream.checksum_values, owner=owner, **changes,
        )
        result = await commit_version(ctx, record, holders, if_match=if_match, if_none_match=if_none_match)
        parts = [el("LastModified", iso8601(record.last_modified)), el("ETag", f'"{record.etag}"')]
        parts += [el(_CHECKSUM_ELEMENTS[a], val) for a, val in record.checksums.items() if a in _CHECKSUM_ELEMENTS]
        return document("CopyObjectResult", parts), {**headers, **result.version_header()}

    return await respond_with_keepalive(request, copy(), early_headers)


async def respond_with_keepalive(
    request: web.Request,
    work: Awaitable[bytes | tuple[bytes, Mapping[str, str]]],
    headers: Mapping[str, str],
    after: float | None = None,
    interval: float | None = None,
) -> web.StreamResponse:
    """Answer with the XML document ``work`` produces; keep a long one alive with whitespace.

    ``work`` returns the document, or (document, headers) to answer with instead of
    ``headers`` when it finishes in time. If it finishes (or fails) within ``after``
    seconds, the answer is an ordinary response (errors propagate with their own status).
    Otherwise a 200 with ``headers`` is sent at once, then a space every ``interval``
    seconds, then the document, or an S3 Error document if ``work`` failed. If the client
    goes away, ``work`` is cancelled.
    """
    after = KEEPALIVE_AFTER if after is None else after
    interval = KEEPALIVE_INTERVAL if interval is None else interval
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=after)
        if done:
            body, final_headers = _split(task.result(), headers)
            return web.Response(body=body, headers={**XML, **final_headers})
        request_id = uuid.uuid4().hex[:16].upper()
        resp = web.StreamResponse(status=200, headers={**XML, **headers, "x-amz-request-id": request_id})
        await resp.prepare(request)
        await resp.write(HEADER.encode())
        while not (await asyncio.wait({task}, timeout=interval))[0]:
            await resp.write(b" ")
        try:
            body, _ = _split(task.result(), headers)
        except ObjstoreError as err:
            body = error_document(err, request.path, request_id)
        except Exception:  # noqa: BLE001 - reported in the body: the status is already sent
            log.exception("copy to %s failed after the answer started (request %s)", request.path, request_id)
            body = error_document(InternalError(), request.path, request_id)
        await resp.write(body[len(HEADER.encode()):] if body.startswith(HEADER.encode()) else body)
        await resp.write_eof()
        return resp
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _split(result: bytes | tuple[bytes, Mapping[str, str]], headers: Mapping[str, str]) -> tuple[bytes, Mapping[str, str]]:
    return result if isinstance(result, tuple) else (result, headers)
