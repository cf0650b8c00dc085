"""ListObjectsV2 and ListObjects (v1).

The metadata service computes the page (prefix, delimiter rollups, marker); this module
parses the query, turns the page's ``next_marker`` into a continuation token (v2) or a
NextMarker (v1), and renders the XML, URL-encoding names when ``encoding-type=url``.
"""
from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from aiohttp import web

from gateway.context import CTX_KEY
from gateway.handlers.bucket import owned_bucket
from gateway.middleware import ENDPOINT_KEY
from gateway.xml import document, el, iso8601
from objstore.errors import InvalidArgument
from objstore.types import ListResult

XML = {"Content-Type": "application/xml"}
MAX_KEYS = 1000


def _max_keys(q) -> int:
    raw = q.get("max-keys", str(MAX_KEYS))
    try:
        n = int(raw)
    except ValueError:
        raise InvalidArgument("Provided max-keys not an integer or within integer range",
                              ArgumentName="max-keys", ArgumentValue=raw) from None
    if n < 0:
        raise InvalidArgument("Argument maxKeys must be an integer between 0 and 2147483647",
                              ArgumentName="maxKeys", ArgumentValue=raw)
    return min(n, MAX_KEYS)


def _encoder(q):
    enc = q.get("encoding-type")
    if enc is None:
        return None, (lambda s: s)
    if enc != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request",
                              ArgumentName="encoding-type", ArgumentValue=enc)
    return "url", (lambda s: quote(s, safe="/"))


def listing_params(request: web.Request):
    """(bucket, query, max_keys, encoding, encoder, prefix, delimiter) of a listing request."""
    q = request.rel_url.query
    max_keys = _max_keys(q)
    enc, encode = _encoder(q)
    return request[ENDPOINT_KEY].bucket, q, max_keys, enc, encode, q.get("prefix", ""), q.get("delimiter") or None


def page_settings(max_keys: int, delimiter: str | None, enc: str | None, encode, truncated: bool) -> list[str]:
    """MaxKeys, Delimiter, EncodingType and IsTruncated, in the order S3's v1 listings use."""
    out = [el("MaxKeys", max_keys)]
    if delimiter:
        out.append(el("Delimiter", encode(delimiter)))
    if enc:
        out.append(el("EncodingType", enc))
    out.append(el("IsTruncated", truncated))
    return out


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(b"v1:" + marker.encode("utf-8")).decode()


def decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if not raw.startswith(b"v1:"):
            raise ValueError
        return raw[3:].decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("The continuation token provided is incorrect",
                              ArgumentName="continuation-token", ArgumentValue=token) from None


def _contents(page: ListResult, encode, with_owner: bool) -> list[str]:
    out = []
    for v in page.contents:
        owner = ("<Owner>" + el("ID", v.owner) + el("DisplayName", v.owner) + "</Owner>") if with_owner else ""
        out.append(
            "<Contents>"
            + el("Key", encode(v.key))
            + el("LastModified", iso8601(v.last_modified))
            + el("ETag", f'"{v.etag}"')
            + el("Size", v.size)
            + owner
            + el("StorageClass", "STANDARD")
            + "</Contents>"
        )
    for p in page.common_prefixes:
        out.append("<CommonPrefixes>" + el("Prefix", encode(p)) + "</CommonPrefixes>")
    return out


async def handle_list_objects_v2(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name, q, max_keys, enc, encode, prefix, delimiter = listing_params(request)
    token = q.get("continuation-token")
    start_after = q.get("start-after")
    marker = decode_token(token) if token is not None else start_after
    await owned_bucket(request, name)
    page = await ctx.meta.list_objects(name, prefix, delimiter, marker or None, max_keys)
    parts = [el("Name", name), el("Prefix", encode(prefix))]
    if delimiter:
        parts.append(el("Delimiter", encode(delimiter)))
    parts += [el("MaxKeys", max_keys)]
    if enc:
        parts.append(el("EncodingType", enc))
    parts += [el("KeyCount", len(page.contents) + len(page.common_prefixes)), el("IsTruncated", page.is_truncated)]
    if token is not None:
        parts.append(el("ContinuationToken", token))
    if page.is_truncated and page.next_marker is not None:
        parts.append(el("NextContinuationToken", encode_token(page.next_marker)))
    if start_after is not None:
        parts.append(el("StartAfter", encode(start_after)))
    parts += _contents(page, encode, q.get("fetch-owner") == "true")
    return web.Response(body=document("ListBucketResult", parts), headers=XML)


async def handle_list_objects(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name, q, max_keys, enc, encode, prefix, delimiter = listing_params(request)
    marker = q.get("marker", "")
    await owned_bucket(request, name)
    page = await ctx.meta.list_objects(name, prefix, delimiter, marker or None, max_keys)
    parts = [el("Name", name), el("Prefix", encode(prefix)), el("Marker", encode(marker))]
    if page.is_truncated and page.next_marker is not None:
        parts.append(el("NextMarker", encode(page.next_marker)))
    parts += page_settings(max_keys, delimiter, enc, encode, page.is_truncated)
    parts += _contents(page, encode, True)
    return web.Response(body=document("ListBucketResult", parts), headers=XML)
