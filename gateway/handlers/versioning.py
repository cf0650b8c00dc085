"""Bucket versioning: Get/PutBucketVersioning and ListObjectVersions.

The versioning rules themselves (what PUT and DELETE do in each state) live in the
metadata service (:mod:`metadata.fsm.object_index`); this module parses and renders S3's
forms:
- ``PUT /bucket?versioning`` takes a ``VersioningConfiguration`` with ``Status`` Enabled or
  Suspended (a bucket never returns to unversioned); ``MfaDelete`` is accepted only as
  Disabled (MFA delete is not supported: Enabled is 501 NotImplemented).
- ``GET /bucket?versioning`` of a never-configured bucket is an empty configuration.
- ``GET /bucket?versions`` lists versions and delete markers, S3's order and paging.
- A ``versionId`` query value is "null" or one of our version ids; anything else is 400
  InvalidArgument, as S3 answers for ids it could never have issued (checked by the
  router: :func:`gateway.query.version_id`).
- Small XML request bodies (here and in tagging) are read by
  :func:`gateway.datapath.body.read_xml_body`, which checks them against the signature,
  Content-MD5 and any flexible checksum.
"""
from __future__ import annotations

from typing import Callable

from aiohttp import web

from gateway.access import owned_bucket
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.list_consistency import listing_headers, listing_level
from gateway.datapath.body import read_xml_body
from gateway.endpoints import BucketEndpoint, ListVersionsEndpoint
from gateway.responses import XML, owner_element, page_settings
from gateway.xml import child_text, document, el, iso8601, parse
from objstore.errors import IllegalVersioningConfiguration, MalformedXML, NotImplementedOp
from objstore.types import ObjectVersion

STATES = ("Enabled", "Suspended")
MAX_CONFIG_BODY = 64 * 1024


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


async def handle_put_bucket_versioning(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    caller = request[CALLER_KEY]
    await owned_bucket(ctx, caller.owner, ep.bucket)
    status = parse_versioning(await read_xml_body(request, caller.auth, MAX_CONFIG_BODY))
    await ctx.meta.set_bucket_versioning(ep.bucket, status)
    ctx.forget_bucket(ep.bucket)
    return web.Response(status=200)


async def handle_get_bucket_versioning(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    bucket = await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    parts = [el("Status", bucket.versioning)] if bucket.versioning else []
    return web.Response(body=document("VersioningConfiguration", parts), headers=XML)


def version_entry(v: ObjectVersion, latest: bool, encode: Callable[[str], str]) -> str:
    """One ``Version`` or ``DeleteMarker`` element of a ListVersionsResult."""
    common = el("Key", encode(v.key)) + el("VersionId", v.s3_version_id) + el("IsLatest", latest)
    common += el("LastModified", iso8601(v.last_modified))
    if v.delete_marker:
        return "<DeleteMarker>" + common + owner_element(v.owner) + "</DeleteMarker>"
    return ("<Version>" + common + el("ETag", f'"{v.etag}"') + el("Size", v.size) + el("StorageClass", "STANDARD")
            + owner_element(v.owner) + "</Version>")


async def handle_list_object_versions(ctx: GatewayContext, request: web.Request,
                                      ep: ListVersionsEndpoint) -> web.Response:
    scope, encode = ep.scope, ep.scope.encode
    marker, vid_marker = ep.key_marker or None, ep.version_id_marker or None
    if await listing_level(ctx, request, ep.bucket) == "one":  # the cached record proved ownership
        page, local = await ctx.meta.list_object_versions_local(ep.bucket, scope.prefix, scope.delimiter, marker,
                                                                vid_marker, ep.max_keys)
        headers = listing_headers(ctx, local)
    else:
        await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
        page = await ctx.meta.list_object_versions(ep.bucket, scope.prefix, scope.delimiter, marker, vid_marker,
                                                   ep.max_keys)
        headers = listing_headers(ctx, None)
    parts = [el("Name", ep.bucket), el("Prefix", encode(scope.prefix)), el("KeyMarker", encode(ep.key_marker)),
             el("VersionIdMarker", ep.version_id_marker)]
    if page.is_truncated and page.next_key_marker is not None:
        parts.append(el("NextKeyMarker", encode(page.next_key_marker)))
        if page.next_version_id_marker is not None:
            parts.append(el("NextVersionIdMarker", page.next_version_id_marker))
    parts += page_settings(ep.max_keys, scope, page.is_truncated)
    parts += [version_entry(v, latest, encode) for v, latest in zip(page.versions, page.latest)]
    parts += ["<CommonPrefixes>" + el("Prefix", encode(p)) + "</CommonPrefixes>" for p in page.common_prefixes]
    return web.Response(body=document("ListVersionsResult", parts), headers={**XML, **headers})
