"""Multipart uploads: Create, Complete, Abort, ListParts and ListMultipartUploads.

(UploadPart and UploadPartCopy, which move data, are in :mod:`gateway.handlers.upload_part`.)

The upload state lives in the metadata service (:mod:`metadata.fsm.uploads`), which validates a
CompleteMultipartUpload atomically: part order, part ETags, minimum part sizes, then the
object's record (its parts list; no data is copied) replaces the key's current version in
the same step. This module parses requests, renders S3's XML and collects garbage after
the answer: the parts a completion left out, the version it replaced, an aborted upload's
parts.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.access import owned_bucket
from gateway.consistency import write_quorum_of
from gateway.datapath.write import publish_version, write_headers
from gateway.auth.checksums import DIGEST_SIZES, HEADER_PREFIX, normalize_algorithm
from gateway.auth.sigv4 import verify_payload_sha256
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import READ_SIZE, STREAMING_MODES, BodyStream, declared_size
from gateway.datapath.garbage import collect_parts
from gateway.endpoints import ListPartsEndpoint, ListUploadsEndpoint, ObjectEndpoint, UploadEndpoint, url_encoder
from gateway.object_headers import parse_tagging_header, stored_headers, write_conditions
from gateway.responses import CHECKSUM_ELEMENTS, XML, owner_element
from gateway.upload_cleanup import abort_upload
from gateway.xml import document, el, iso8601, local_name, parse
from metadata.api.upload_client import UploadClient
from metadata.api.upload_records import MultipartUpload
from objstore.errors import BadDigest, IncompleteBody, InvalidDigest, MalformedXML, ServiceUnavailable
from objstore.naming import validate_key
from objstore.s3rules import checksum_type_for
from objstore.types import Policy

MAX_COMPLETE_BODY = 8 * 1024**2  # 10,000 parts with checksums fit several times over
_ELEMENT_ALGORITHMS = {v: k for k, v in CHECKSUM_ELEMENTS.items()}


def new_upload_id(ctx: GatewayContext) -> str:
    """A unique, time-ordered, unguessable upload id."""
    return f"{ctx.hlc.next()}.{secrets.token_hex(8)}"


def parse_complete(body: bytes) -> list[list[Any]]:
    """The ``[number, etag, {algorithm: checksum}]`` rows of a CompleteMultipartUpload body,
    in document order. Raises MalformedXML for anything but a well-formed, non-empty list."""
    root = parse(body, "CompleteMultipartUpload", max_size=MAX_COMPLETE_BODY)
    rows: list[list[Any]] = []
    for part in root:
        if local_name(part) != "Part":
            raise MalformedXML()
        fields = {local_name(c): (c.text or "").strip() for c in part}
        number, etag = fields.get("PartNumber"), fields.get("ETag")
        if number is None or etag is None or not (number.isascii() and number.isdigit()):
            raise MalformedXML()
        sums = {_ELEMENT_ALGORITHMS[k]: v for k, v in fields.items() if k in _ELEMENT_ALGORITHMS}
        rows.append([int(number), etag.strip('"'), sums])
    if not rows:
        raise MalformedXML()
    return rows


def _checksum_info(u: MultipartUpload) -> list[str]:
    if not u.checksum_algorithm:
        return []
    return [el("ChecksumAlgorithm", u.checksum_algorithm.upper()), el("ChecksumType", u.checksum_type)]


# --- handlers ---------------------------------------------------------------------------------


async def handle_create_multipart_upload(ctx: GatewayContext, request: web.Request,
                                         ep: ObjectEndpoint) -> web.Response:
    h = request.headers
    owner = request[CALLER_KEY].owner
    validate_key(ep.key)
    algorithm = h.get("x-amz-checksum-algorithm", "").strip()
    algorithm = normalize_algorithm(algorithm) if algorithm else ""
    ctype = checksum_type_for(algorithm, h.get("x-amz-checksum-type", "").strip().upper())
    tags = parse_tagging_header(h.get("x-amz-tagging", ""))
    bucket = await owned_bucket(ctx, owner, ep.bucket, cached=True)
    content_type, kept, user_meta = stored_headers(h)
    upload = MultipartUpload(
        bucket=ep.bucket, key=ep.key, upload_id=new_upload_id(ctx), initiated=ctx.clock(), owner=owner,
        content_type=content_type, headers=kept, user_meta=user_meta, policy=bucket.policy,
        checksum_algorithm=algorithm, checksum_type=ctype, tags=tags,
    )
    await UploadClient(ctx.meta).create(upload)
    headers = dict(XML)
    if algorithm:
        headers["x-amz-checksum-algorithm"] = algorithm.upper()
        headers["x-amz-checksum-type"] = ctype
    body = document("InitiateMultipartUploadResult",
                    [el("Bucket", ep.bucket), el("Key", ep.key), el("UploadId", upload.upload_id)])
    return web.Response(body=body, headers=headers)


async def _read_body(request: web.Request) -> bytes:
    """The request body, verified against the signature and Content-MD5. (Not through
    ``BodyStream``: a Complete request's ``x-amz-checksum-*`` headers are the object's.)"""
    auth = request[CALLER_KEY].auth
    size = declared_size(request, auth)
    if size > MAX_COMPLETE_BODY:
        raise MalformedXML("The XML you provided was too large.")
    if auth.payload_mode in STREAMING_MODES:
        return b"".join([c async for c in BodyStream(request, auth, size).chunks()])
    body = bytearray()
    while len(body) <= size:
        chunk = await request.content.read(READ_SIZE)
        if not chunk:
            break
        body += chunk
    if len(body) != size:
        raise IncompleteBody()
    md5_header = request.headers.get("Content-MD5")
    if md5_header is not None:
        try:
            want = base64.b64decode(md5_header, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidDigest() from None
        if want != hashlib.md5(body).digest():
            raise BadDigest()
    if auth.payload_mode == "signed" and auth.content_sha256:
        verify_payload_sha256(auth, hashlib.sha256(body).hexdigest())
    return bytes(body)


async def handle_complete_multipart_upload(ctx: GatewayContext, request: web.Request,
                                           ep: UploadEndpoint) -> web.Response:
    if_match, if_none_match = write_conditions(request.headers)
    bucket = await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket, cached=True)
    ctx.require_metadata()  # no commit is possible: refuse at once while an outage is known
    policy = Policy.parse(bucket.policy)
    quorum = write_quorum_of(request.headers, policy, bucket.write_quorum)
    rows = parse_complete(await _read_body(request))
    sums = {k.lower()[len(HEADER_PREFIX):]: v.strip() for k, v in request.headers.items()
            if k.lower().startswith(HEADER_PREFIX) and k.lower()[len(HEADER_PREFIX):] in DIGEST_SIZES}
    version_id = ctx.hlc.next()
    try:
        done = await UploadClient(ctx.meta).complete(ep.bucket, ep.key, ep.upload_id, rows, version_id, ctx.clock(),
                                                     sums, if_match=if_match, if_none_match=if_none_match)
    except ServiceUnavailable:
        ctx.outage.note()  # the next writes fail at once (ctx.require_metadata)
        raise
    ctx.uploads.forget(ep.bucket, ep.key, ep.upload_id)
    v = done.version
    if not done.replayed:
        if done.unused:
            ctx.background(collect_parts(ctx.storage, ctx.topology, done.unused, v.policy))
        # done.previous (a replaced version) is left to the storage nodes' garbage
        # collection, so a GET streaming from it finishes (gateway.datapath.write).
    # The outcome's version has no parts list: the manifest takes the record as stored
    # (when a later write already replaced it, that write's manifest supersedes this one).
    stored = (await ctx.meta.lookup_object(ep.bucket, ep.key, done.s3_version_id or v.s3_version_id)).version
    if stored.version_id == v.version_id:
        await publish_version(ctx, stored, done.commit_index, policy, quorum, done.map_epoch)
    headers = {**XML, **done.version_header(),
               **write_headers(done.commit_index, stored, policy, bucket.write_quorum, quorum)}
    out = [el("Location", f"{request.scheme}://{request.host}/{ep.bucket}/{quote(ep.key)}"),
           el("Bucket", ep.bucket), el("Key", ep.key), el("ETag", f'"{v.etag}"')]
    for alg, value in v.checksums.items():
        if alg in CHECKSUM_ELEMENTS:
            out.append(el(CHECKSUM_ELEMENTS[alg], value))
            out.append(el("ChecksumType", "COMPOSITE" if "-" in value else "FULL_OBJECT"))
    return web.Response(body=document("CompleteMultipartUploadResult", out), headers=headers)


async def handle_abort_multipart_upload(ctx: GatewayContext, request: web.Request,
                                        ep: UploadEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket, cached=True)
    await abort_upload(ctx, ep.bucket, ep.key, ep.upload_id)
    return web.Response(status=204)


async def handle_list_parts(ctx: GatewayContext, request: web.Request, ep: ListPartsEndpoint) -> web.Response:
    encode = url_encoder(ep.encoding_type)
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket, cached=True)
    page = await UploadClient(ctx.meta).list_parts(ep.bucket, ep.key, ep.upload_id, ep.part_number_marker,
                                                   ep.max_parts)
    u = page.upload
    out = [el("Bucket", ep.bucket), el("Key", encode(ep.key)), el("UploadId", u.upload_id)]
    if ep.encoding_type:
        out.append(el("EncodingType", ep.encoding_type))
    out += [owner_element(u.owner, "Initiator"), owner_element(u.owner), el("StorageClass", "STANDARD"),
            el("PartNumberMarker", ep.part_number_marker), el("NextPartNumberMarker", page.next_marker),
            el("MaxParts", ep.max_parts), el("IsTruncated", page.is_truncated)]
    for up in page.parts:
        p = up.part
        out.append("<Part>" + el("PartNumber", p.number) + el("LastModified", iso8601(up.last_modified))
                   + el("ETag", f'"{p.etag}"') + el("Size", p.size)
                   + "".join(el(CHECKSUM_ELEMENTS[a], val) for a, val in p.checksums.items()
                             if a == u.checksum_algorithm)
                   + "</Part>")
    out += _checksum_info(u)
    return web.Response(body=document("ListPartsResult", out), headers=XML)


async def handle_list_multipart_uploads(ctx: GatewayContext, request: web.Request,
                                        ep: ListUploadsEndpoint) -> web.Response:
    scope, encode = ep.scope, ep.scope.encode
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    page = await UploadClient(ctx.meta).list_uploads(ep.bucket, scope.prefix, scope.delimiter,
                                                     ep.key_marker or None, ep.upload_id_marker or None,
                                                     ep.max_uploads)
    out = [el("Bucket", ep.bucket), el("KeyMarker", encode(ep.key_marker)), el("UploadIdMarker", ep.upload_id_marker)]
    if page.is_truncated:
        out.append(el("NextKeyMarker", encode(page.next_key_marker or "")))
        out.append(el("NextUploadIdMarker", page.next_upload_id_marker or ""))
    if scope.delimiter:
        out.append(el("Delimiter", encode(scope.delimiter)))
    out.append(el("Prefix", encode(scope.prefix)))
    if scope.encoding_type:
        out.append(el("EncodingType", scope.encoding_type))
    out += [el("MaxUploads", ep.max_uploads), el("IsTruncated", page.is_truncated)]
    for u in page.uploads:
        out.append("<Upload>" + el("Key", encode(u.key)) + el("UploadId", u.upload_id)
                   + owner_element(u.owner, "Initiator") + owner_element(u.owner) + el("StorageClass", "STANDARD")
                   + el("Initiated", iso8601(u.initiated)) + "".join(_checksum_info(u)) + "</Upload>")
    for p in page.common_prefixes:
        out.append("<CommonPrefixes>" + el("Prefix", encode(p)) + "</CommonPrefixes>")
    return web.Response(body=document("ListMultipartUploadsResult", out), headers=XML)
