"""Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging.

Tags are metadata: every change is a command to the metadata service that rewrites the
version record, never the blobs. Object tagging addresses the current version, or the one
named by ``versionId``, and answers with ``x-amz-version-id`` when the bucket has
versioning configured. Documents are S3's ``Tagging``/``TagSet``/``Tag`` form; a document
that does not have that shape is 400 MalformedXML, one that breaks S3's limits (see
:mod:`metadata.tags`) 400 InvalidTag. A bucket without tags answers GetBucketTagging with
404 NoSuchTagSet; putting an empty tag set removes them.

The ``x-amz-tagging`` header of PutObject is the URL query form ``k1=v1&k2=v2``
(:func:`parse_tagging_header`).
"""
from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from gateway.context import CTX_KEY
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.versioning import read_xml_body, version_id_param, with_marker_headers
from gateway.middleware import ENDPOINT_KEY, OWNER_KEY
from gateway.xml import document, el, parse
from metadata.tags import MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, tag_set
from objstore.errors import AccessDenied, MalformedXML, NoSuchKey, NoSuchTagSet, ObjstoreError

XML = {"Content-Type": "application/xml"}
MAX_TAGGING_BODY = 64 * 1024


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_tagging(body: bytes, limit: int = MAX_OBJECT_TAGS) -> dict[str, str]:
    """The tag set of a ``Tagging`` document; raises MalformedXML or InvalidTag."""
    if len(body) > MAX_TAGGING_BODY:
        raise MalformedXML("The XML you provided was too large.")
    tree = parse(body, "Tagging")
    sets = [c for c in tree if _local(c.tag) == "TagSet"]
    if len(sets) != 1 or len(tree) != 1:
        raise MalformedXML("A Tagging document holds exactly one TagSet.")
    pairs = []
    for tag in sets[0]:
        if _local(tag.tag) != "Tag":
            raise MalformedXML(f"Unexpected element {_local(tag.tag)} in TagSet.")
        fields = {_local(c.tag): c for c in tag}
        if set(fields) != {"Key", "Value"} or len(tag) != 2:
            raise MalformedXML("Each Tag holds one Key and one Value.")
        pairs.append((fields["Key"].text or "", fields["Value"].text or ""))
    return tag_set(pairs, limit)


def parse_tagging_header(value: str) -> dict[str, str]:
    """The tag set of an ``x-amz-tagging`` header (URL query form); raises InvalidTag."""
    return tag_set(parse_qsl(value, keep_blank_values=True), MAX_OBJECT_TAGS)


def tagging_document(tags: dict[str, str]) -> bytes:
    body = "".join("<Tag>" + el("Key", k) + el("Value", v) + "</Tag>" for k, v in tags.items())
    return document("Tagging", ["<TagSet>", body, "</TagSet>"])


# --- objects ----------------------------------------------------------------------------------


async def _set_object_tags(request: web.Request, tags: dict[str, str]) -> dict[str, str]:
    ctx = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    version_id = version_id_param(request)
    await owned_bucket(request, ep.bucket)
    try:
        result = await ctx.meta.put_object_tags(ep.bucket, ep.key, tags, version_id)
    except ObjstoreError as err:
        raise with_marker_headers(err, request.method) from None
    return result.version_header()


async def handle_put_object_tagging(request: web.Request) -> web.Response:
    tags = parse_tagging(await read_xml_body(request, MAX_TAGGING_BODY))
    return web.Response(status=200, headers=await _set_object_tags(request, tags))


async def handle_delete_object_tagging(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=await _set_object_tags(request, {}))


async def handle_get_object_tagging(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    version_id = version_id_param(request)
    try:
        found = await ctx.meta.lookup_object(ep.bucket, ep.key, version_id)
    except NoSuchKey as err:
        await owned_bucket(request, ep.bucket)
        raise with_marker_headers(err, request.method) from None
    except ObjstoreError as err:
        raise with_marker_headers(err, request.method) from None
    if found.version.owner != request[OWNER_KEY]:
        raise AccessDenied(BucketName=ep.bucket)
    return web.Response(body=tagging_document(found.version.tags), headers={**XML, **found.version_header()})


# --- buckets ----------------------------------------------------------------------------------


async def handle_put_bucket_tagging(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name = request[ENDPOINT_KEY].bucket
    tags = parse_tagging(await read_xml_body(request, MAX_TAGGING_BODY), MAX_BUCKET_TAGS)
    await owned_bucket(request, name)
    await ctx.meta.put_bucket_tags(name, tags)
    return web.Response(status=204)


async def handle_get_bucket_tagging(request: web.Request) -> web.Response:
    bucket = await owned_bucket(request, request[ENDPOINT_KEY].bucket)
    if not bucket.tags:
        raise NoSuchTagSet(BucketName=bucket.name)
    return web.Response(body=tagging_document(bucket.tags), headers=XML)


async def handle_delete_bucket_tagging(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name = request[ENDPOINT_KEY].bucket
    await owned_bucket(request, name)
    await ctx.meta.put_bucket_tags(name, {})
    return web.Response(status=204)
