"""ListObjectsV2 and ListObjects (v1).

The metadata service computes the page (prefix, delimiter rollups, marker); the router
parsed the query (:class:`gateway.endpoints.ListObjectsV2Endpoint`, ``ListObjectsEndpoint``);
this module turns the page's ``next_marker`` into a continuation token (v2) or a
NextMarker (v1), and renders the XML, URL-encoding names when ``encoding-type=url``.
"""
from __future__ import annotations

from aiohttp import web

from gateway.anonymous import may_list
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.endpoints import ListingScope, ListObjectsEndpoint, ListObjectsV2Endpoint
from gateway.list_consistency import listing_headers, listing_level
from gateway.public_access import opened_bucket
from gateway.query import encode_token
from gateway.responses import XML, owner_element, page_settings
from gateway.xml import document, el, iso8601
from objstore.types import ListResult


def _contents(page: ListResult, scope: ListingScope, with_owner: bool) -> list[str]:
    out = []
    for v in page.contents:
        owner = owner_element(v.owner) if with_owner else ""
        out.append(
            "<Contents>"
            + el("Key", scope.encode(v.key))
            + el("LastModified", iso8601(v.last_modified))
            + el("ETag", f'"{v.etag}"')
            + el("Size", v.size)
            + owner
            + el("StorageClass", "STANDARD")
            + "</Contents>"
        )
    for p in page.common_prefixes:
        out.append("<CommonPrefixes>" + el("Prefix", scope.encode(p)) + "</CommonPrefixes>")
    return out


async def _page(ctx: GatewayContext, request: web.Request, bucket: str, scope: ListingScope, marker: str | None,
                max_keys: int) -> tuple[ListResult, dict[str, str]]:
    """One page at the request's consistency (:mod:`gateway.list_consistency`), and the
    headers naming it."""
    if await listing_level(ctx, request, bucket) == "one":
        page, local = await ctx.meta.list_objects_local(bucket, scope.prefix, scope.delimiter, marker, max_keys)
        return page, listing_headers(ctx, local)
    await opened_bucket(ctx, request[CALLER_KEY], bucket, may_list)
    page = await ctx.meta.list_objects(bucket, scope.prefix, scope.delimiter, marker, max_keys)
    return page, listing_headers(ctx, None)


async def handle_list_objects_v2(ctx: GatewayContext, request: web.Request, ep: ListObjectsV2Endpoint) -> web.Response:
    scope = ep.scope
    page, headers = await _page(ctx, request, ep.bucket, scope, ep.key_marker or None, ep.max_keys)
    parts = [el("Name", ep.bucket), el("Prefix", scope.encode(scope.prefix))]
    if scope.delimiter:
        parts.append(el("Delimiter", scope.encode(scope.delimiter)))
    parts += [el("MaxKeys", ep.max_keys)]
    if scope.encoding_type:
        parts.append(el("EncodingType", scope.encoding_type))
    parts += [el("KeyCount", len(page.contents) + len(page.common_prefixes)), el("IsTruncated", page.is_truncated)]
    if ep.continuation_token is not None:
        parts.append(el("ContinuationToken", ep.continuation_token))
    if page.is_truncated and page.next_marker is not None:
        parts.append(el("NextContinuationToken", encode_token(page.next_marker)))
    if ep.start_after is not None:
        parts.append(el("StartAfter", scope.encode(ep.start_after)))
    parts += _contents(page, scope, ep.fetch_owner)
    return web.Response(body=document("ListBucketResult", parts), headers={**XML, **headers})


async def handle_list_objects(ctx: GatewayContext, request: web.Request, ep: ListObjectsEndpoint) -> web.Response:
    scope = ep.scope
    page, headers = await _page(ctx, request, ep.bucket, scope, ep.key_marker or None, ep.max_keys)
    parts = [el("Name", ep.bucket), el("Prefix", scope.encode(scope.prefix)), el("Marker", scope.encode(ep.key_marker))]
    if page.is_truncated and page.next_marker is not None:
        parts.append(el("NextMarker", scope.encode(page.next_marker)))
    parts += page_settings(ep.max_keys, scope, page.is_truncated)
    parts += _contents(page, scope, True)
    return web.Response(body=document("ListBucketResult", parts), headers={**XML, **headers})
