"""PutObject: stream the body to the placement nodes, then commit the version record.

Order of work, which is what makes a PUT atomic to readers:
1. validate the request (key, size, headers) — nothing is written for a bad request;
2. stream the body to N nodes, verified as it flows (``BodyStream``), and wait for W
   durable acknowledgements;
3. commit the version record (with the nodes that hold it) through the metadata service
   (the shared write steps: :mod:`gateway.datapath.write`);
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

from aiohttp import web

from gateway.access import owned_bucket
from gateway.anonymous import canned_public_read
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import BodyStream, declared_size
from gateway.consistency import write_quorum_of
from gateway.datapath.write import commit_version, write_blob, write_headers
from gateway.endpoints import ObjectEndpoint
from gateway.object_headers import parse_tagging_header, stored_headers, write_conditions
from objstore.errors import EntityTooLarge
from objstore.naming import validate_key
from objstore.types import ObjectVersion, Policy

MAX_PUT_SIZE = 5 * 1024**3  # S3's limit for a single PUT


async def handle_put_object(ctx: GatewayContext, request: web.Request, ep: ObjectEndpoint) -> web.Response:
    caller = request[CALLER_KEY]
    if_match, if_none_match = write_conditions(request.headers)
    tags = parse_tagging_header(request.headers.get("x-amz-tagging", ""))
    validate_key(ep.key)
    size = declared_size(request, caller.auth)
    if size > MAX_PUT_SIZE:
        raise EntityTooLarge(
            f"Your proposed upload of {size} bytes exceeds the maximum of {MAX_PUT_SIZE} for a single PUT.",
            ProposedSize=size,
            MaxSizeAllowed=MAX_PUT_SIZE,
        )
    content_type, kept, user_meta = stored_headers(request.headers)
    bucket = await owned_bucket(ctx, caller.owner, ep.bucket, cached=True)
    ctx.require_metadata()  # no commit is possible: refuse before the body is stored
    policy = Policy.parse(bucket.policy)
    body = BodyStream(request, caller.auth, size)
    quorum = write_quorum_of(request.headers, policy, bucket.write_quorum)
    stored = await write_blob(ctx, ep.bucket, ep.key, policy, size, body.chunks(), bucket_quorum=quorum)
    ctx.metrics.add_bytes_in(size)
    record = ObjectVersion(
        bucket=ep.bucket,
        key=ep.key,
        version_id=stored.version_id,
        size=size,
        etag=body.etag,
        last_modified=ctx.clock(),
        content_type=content_type,
        headers=kept,
        user_meta=user_meta,
        policy=stored.policy,
        placement=stored.placement,
        ring_epoch=ctx.topology.map.epoch,
        checksums=body.checksum_values,
        owner=caller.owner,
        tags=tags,
        public_read=bool(canned_public_read(request.headers.get("x-amz-acl"))),
    )
    result = await commit_version(ctx, record, policy, quorum, if_match=if_match, if_none_match=if_none_match)
    headers = {"ETag": f'"{body.etag}"', **result.version_header(),
               **write_headers(result.commit_index, record, policy, bucket.write_quorum, quorum)}
    for alg, value in body.checksum_values.items():
        headers[f"x-amz-checksum-{alg}"] = value
    return web.Response(status=200, headers=headers)
