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
read an Error inside a 200 CopyObject answer as a failure (:mod:`gateway.keepalive`).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from aiohttp import web

from gateway.access import owned_bucket
from gateway.anonymous import canned_public_read
from gateway.auth.checksums import DIGEST_SIZES, normalize_algorithm
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.copy_source import CopySource, check_copy_conditions, copy_source_headers, parse_copy_source
from gateway.datapath.lookup import is_current, source_lookup
from gateway.datapath.reader import read_range
from gateway.datapath.source_stream import SourceStream, single_part_md5
from gateway.consistency import write_quorum_of
from gateway.datapath.write import commit_version, write_blob, write_headers
from gateway.endpoints import ObjectEndpoint
from gateway.keepalive import respond_with_keepalive
from gateway.object_headers import parse_tagging_header, stored_headers, write_conditions
from gateway.responses import checksum_elements
from gateway.xml import document, el, iso8601
from objstore.errors import InvalidArgument, InvalidRequest
from objstore.naming import validate_key
from objstore.types import Bucket, ObjectVersion, Policy

# The copy-source pieces live in gateway.copy_source, gateway.datapath and gateway.keepalive;
# they are named here too because CopyObject is what they are for.
__all__ = [
    "CopySource", "SourceStream", "check_copy_conditions", "copied_record",
    "handle_copy_object", "metadata_directive", "parse_copy_source", "predicted_version_header",
    "respond_with_keepalive", "single_part_md5", "tagging_directive",
]

MAX_COPY_SIZE = 5 * 1024**3  # S3's limit for a CopyObject source


def _directive(headers: Mapping[str, str], header: str, what: str) -> str:
    raw = headers.get(header)
    if raw is None:
        return "COPY"
    value = raw.strip().upper()
    if value not in ("COPY", "REPLACE"):
        raise InvalidArgument(f"Unknown {what} directive.", ArgumentName=header, ArgumentValue=raw)
    return value


def metadata_directive(headers: Mapping[str, str]) -> str:
    """COPY (the default) or REPLACE; raises InvalidArgument for anything else."""
    return _directive(headers, "x-amz-metadata-directive", "metadata")


def tagging_directive(headers: Mapping[str, str]) -> str:
    """COPY (the default) or REPLACE; raises InvalidArgument for anything else."""
    return _directive(headers, "x-amz-tagging-directive", "tagging")


# Fields a copy never inherits: it is one live blob (not parts, not a delete marker),
# whether it is a versioned or a "null" version is for the metadata service to decide, and
# its ACL is the copy request's own (private unless it says public-read), as in S3.
_NOT_COPIED = ("delete_marker", "parts", "versioned", "public_read")


def copied_record(source: ObjectVersion, **changes: object) -> ObjectVersion:
    """``source`` (its type, headers, metadata, tags) with ``changes``, as a new version."""
    reset: dict[str, object] = {}
    for f in dataclasses.fields(ObjectVersion):
        if f.name in _NOT_COPIED:
            reset[f.name] = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return dataclasses.replace(source, **{**reset, **changes})


def predicted_version_header(bucket: Bucket, version_id: str) -> dict[str, str]:
    """The ``x-amz-version-id`` a new version will get, from the bucket's versioning state."""
    if bucket.versioning == "Enabled":
        return {"x-amz-version-id": version_id}
    return {"x-amz-version-id": "null"} if bucket.versioning else {}


async def handle_copy_object(ctx: GatewayContext, request: web.Request, ep: ObjectEndpoint) -> web.StreamResponse:
    h = request.headers
    owner = request[CALLER_KEY].owner
    validate_key(ep.key)
    src = parse_copy_source(h["x-amz-copy-source"])
    directive = metadata_directive(h)
    new_tags = parse_tagging_header(h.get("x-amz-tagging", "")) if tagging_directive(h) == "REPLACE" else None
    if_match, if_none_match = write_conditions(h)
    algorithm = h.get("x-amz-checksum-algorithm")
    extra_algorithms = [normalize_algorithm(algorithm)] if algorithm else []
    bucket = await owned_bucket(ctx, owner, ep.bucket, cached=True)
    ctx.require_metadata()  # no commit is possible: refuse before the source is looked up
    found = await source_lookup(ctx, owner, src)
    v = found.version
    onto_itself = (src.bucket, src.key) == (ep.bucket, ep.key) and (
        src.version_id is None or await is_current(ctx, v))
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
    quorum = write_quorum_of(h, policy, bucket.write_quorum)
    version_id = ctx.hlc.next()
    headers = copy_source_headers(found)
    early_headers = {**headers, **predicted_version_header(bucket, version_id)}

    async def copy() -> tuple[bytes, dict[str, str]]:
        stream = SourceStream(read_range(ctx.storage, ctx.topology, v, 0, v.size - 1, ctx.damage.note), v.size,
                              single_part_md5(v.etag), [*(a for a in v.checksums if a in DIGEST_SIZES), *extra_algorithms])
        stored = await write_blob(ctx, ep.bucket, ep.key, policy, v.size, stream.chunks(), version_id,
                                  bucket_quorum=quorum)
        changes: dict[str, object] = {"public_read": bool(canned_public_read(h.get("x-amz-acl")))}
        if directive == "REPLACE":
            changes["content_type"], changes["headers"], changes["user_meta"] = stored_headers(h)
        if new_tags is not None:
            changes["tags"] = new_tags
        record = copied_record(
            v, bucket=ep.bucket, key=ep.key, version_id=version_id, etag=stream.etag,
            last_modified=ctx.clock(), policy=stored.policy, placement=stored.placement,
            ring_epoch=ctx.topology.map.epoch, checksums=stream.checksum_values, owner=owner, **changes,
        )
        result = await commit_version(ctx, record, policy, quorum, if_match=if_match, if_none_match=if_none_match)
        parts = [el("LastModified", iso8601(record.last_modified)), el("ETag", f'"{record.etag}"')]
        parts += checksum_elements(record.checksums)
        return document("CopyObjectResult", parts), {**headers, **result.version_header(),
                                                     **write_headers(result.commit_index, record, policy, bucket.write_quorum,
                                                                   quorum)}

    return await respond_with_keepalive(request, copy(), early_headers)
