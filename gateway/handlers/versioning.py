"""Bucket versioning: Get/PutBucketVersioning, ListObjectVersions, and version-id helpers.

The versioning rules themselves (what PUT and DELETE do in each state) live in the
metadata service (:mod:`metadata.fsm.object_index`); this module parses and renders S3's
forms:
- ``PUT /bucket?versioning`` takes a ``VersioningConfiguration`` with ``Status`` Enabled or
  Suspended (a bucket never returns to unversioned); ``MfaDelete`` is accepted only as
  Disabled (MFA delete is not supported: Enabled is 501 NotImplemented).
- ``GET /bucket?versioning`` of a never-configured bucket is an empty configuration.
- ``GET /bucket?versions`` lists versions and delete markers, S3's order and paging.
- A ``versionId`` query value is "null" or one of our version ids; anything else is 400
  InvalidArgument, as S3 answers for ids it could never have issued.
- Small XML request bodies (here and in tagging) are read by :func:`read_xml_body`, which
  checks them against the signature, Content-MD5 and any flexible checksum.
"""
from __future__ import annotations

from aiohttp import web

from gateway.context import CTX_KEY
from gateway.datapath.body import BodyStream, declared_size
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.listing import listing_params, page_settings
from gateway.middleware import AUTH_KEY, ENDPOINT_KEY
from gateway.xml import child_text, document, el, iso8601, parse
from objstore.errors import IllegalVersioningConfiguration, InvalidArgument, MalformedXML, MethodNotAllowed, NotImplementedOp, ObjstoreError
from objstore.hlc import is_version_id
from objstore.types import ObjectVersion

XML = {"Content-Type": "application/xml"}
STATES = ("Enabled", "Suspended")
MAX_CONFIG_BODY = 64 * 1024


async def read_xml_body(request: web.Request, limit: int = MAX_CONFIG_BODY) -> bytes:
    """The whole (small) request body, verified like an object body; MalformedXML when it
    is larger than ``limit``."""
    auth = request[AUTH_KEY]
    size = declared_size(request, auth)
    if size > limit:
        raise MalformedXML("The XML you provided was too large.")
    return b"".join([chunk async for chunk in BodyStream(request, auth, size).chunks()])


def version_id_param(request: web.Request) -> str | None:
    """The ``versionId`` query value, validated; None when absent."""
    q = request.rel_url.query
    if "versionId" not in q:
        return None
    vid = q["versionId"]
    if vid == "":
        raise InvalidArgument("Version id cannot be the empty string", ArgumentName="versionId", ArgumentValue=vid)
    if vid != "null" and not is_version_id(vid):
        raise InvalidArgument("Invalid version id specified", ArgumentName="versionId", ArgumentValue=vid)
    return vid


def with_marker_headers(err: ObjstoreError, method: str) -> ObjstoreError:
    """Turn the metadata service's delete-marker details on ``err`` (NoSuchKey for a current
    delete marker, MethodNotAllowed for one asked for by id) into the response headers
    S3 sends: ``x-amz-delete-marker: true`` and ``x-amz-version-id``."""
    if err.extra.pop("delete_marker", False):
        err.extra["x-amz-delete-marker"] = "true"
        vid = err.extra.pop("version_id", None)
        if vid is not None:
            err.extra["x-amz-version-id"] = vid
        err.extra.pop("last_modified", None)
        if isinstance(err, MethodNotAllowed):
            err.extra["Method"] = method
    return err


def parse_versioning(body: bytes) -> str:
    """The Status of a VersioningConfiguration document: "Enabled" or "Suspended"."""
    tree = parse(body, "VersioningConfiguration")
    names = {c.tag.rsplit("}", 1)[-1] for c in tree}
    if names - {"Status", "MfaDelete"}:
        raise MalformedXML(f"Unexpected element {sorted(names - {'Status', 'MfaDelete'})[0]}.")
    mfa = child_text(tree, "MfaDelete")
    if mfa is not None and mfa not in ("Disabled", "Enabled"):
        raise MalformedXML("MfaDelete must be Enabled or Disabled.")
    if mfa == "Enabled":
        raise NotImplementedOp("MFA delete is not implemented.")
    status = child_text(tree, "Status")
    if status is None:
        raise IllegalVersioningConfiguration("The Versioning element must be specified")
    if status not in STATES:
        raise MalformedXML(f"Invalid versioning status {status!r}; expected Enabled or Suspended.")
    return status


async def handle_put_bucket_versioning(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name = request[ENDPOINT_KEY].bucket
    await owned_bucket(request, name)
    status = parse_versioning(await read_xml_body(request))
    await ctx.meta.set_bucket_versioning(name, status)
    ctx.forget_bucket(name)
    return web.Response(status=200)


async def handle_get_bucket_versioning(request: web.Request) -> web.Response:
    bucket = await owned_bucket(request, request[ENDPOINT_KEY].bucket)
    parts = [el("Status", bucket.versioning)] if bucket.versioning else []
    return web.Response(body=document("VersioningConfiguration", parts), headers=XML)


def _owner(v: ObjectVersion) -> str:
    return "<Owner>" + el("ID", v.owner) + el("DisplayName", v.owner) + "</Owner>"


def version_entry(v: ObjectVersion, latest: bool, encode) -> str:
    """One ``Version`` or ``DeleteMarker`` element of a ListVersionsResult."""
    common = el("Key", encode(v.key)) + el("VersionId", v.s3_version_id) + el("IsLatest", latest)
    common += el("LastModified", iso8601(v.last_modified))
    if v.delete_marker:
        return "<DeleteMarker>" + common + _owner(v) + "</DeleteMarker>"
    return ("<Version>" + common + el("ETag", f'"{v.etag}"') + el("Size", v.size) + el("StorageClass", "STANDARD")
            + _owner(v) + "</Version>")


async def handle_list_object_versions(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name, q, max_keys, enc, encode, prefix, delimiter = listing_params(request)
    key_marker = q.get("key-marker", "")
    vid_marker = q.get("version-id-marker", "")
    if vid_marker and not key_marker:
        raise InvalidArgument("A version-id marker cannot be specified without a key marker.",
                              ArgumentName="version-id-marker", ArgumentValue=vid_marker)
    if vid_marker and vid_marker != "null" and not is_version_id(vid_marker):
        raise InvalidArgument("Invalid version id specified", ArgumentName="version-id-marker", ArgumentValue=vid_marker)
    await owned_bucket(request, name)
    page = await ctx.meta.list_object_versions(name, prefix, delimiter, key_marker or None, vid_marker or None, max_keys)
    parts = [el("Name", name), el("Prefix", encode(prefix)), el("KeyMarker", encode(key_marker)),
             el("VersionIdMarker", vid_marker)]
    if page.is_truncated and page.next_key_marker is not None:
        parts.append(el("NextKeyMarker", encode(page.next_key_marker)))
        if page.next_version_id_marker is not None:
            parts.append(el("NextVersionIdMarker", page.next_version_id_marker))
    parts += page_settings(max_keys, delimiter, enc, encode, page.is_truncated)
    parts += [version_entry(v, latest, encode) for v, latest in zip(page.versions, page.latest)]
    parts += ["<CommonPrefixes>" + el("Prefix", encode(p)) + "</CommonPrefixes>" for p in page.common_prefixes]
    return web.Response(body=document("ListVersionsResult", parts), headers=XML)
