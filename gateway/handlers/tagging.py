"""Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging.

Tags are metadata: every change is a command to the metadata service that rewrites the
version record, never the blobs. Object tagging addresses the current version, or the one
named by ``versionId``, and answers with ``x-amz-version-id`` when the bucket has
versioning configured. Documents are S3's ``Tagging``/``TagSet``/``Tag`` form; a document
that does not have that shape is 400 MalformedXML, one that breaks S3's limits (see
:mod:`objstore.s3rules`) 400 InvalidTag. A bucket without tags answers GetBucketTagging with
404 NoSuchTagSet; putting an empty tag set removes them.

The ``x-amz-tagging`` header of PutObject is the URL query form ``k1=v1&k2=v2``
(:func:`gateway.object_headers.parse_tagging_header`).
"""
from __future__ import annotations

from aiohttp import web

from gateway.access import owned_bucket
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import read_xml_body
from gateway.datapath.lookup import owned_version, with_marker_headers
from gateway.datapath.record_change import publish_record_change
from gateway.endpoints import BucketEndpoint, VersionEndpoint
from gateway.responses import XML
from gateway.xml import document, el, local_name, parse
from objstore.errors import MalformedXML, NoSuchTagSet, ObjstoreError
from objstore.s3rules import MAX_BUCKET_TAGS, MAX_OBJECT_TAGS, tag_set

MAX_TAGGING_BODY = 64 * 1024


def parse_tagging(body: bytes, limit: int = MAX_OBJECT_TAGS) -> dict[str, str]:
    """The tag set of a ``Tagging`` document; raises MalformedXML or InvalidTag."""
    if len(body) > MAX_TAGGING_BODY:
        raise MalformedXML("The XML you provided was too large.")
    tree = parse(body, "Tagging")
    sets = [c for c in tree if local_name(c) == "TagSet"]
    if len(sets) != 1 or len(tree) != 1:
        raise MalformedXML("A Tagging document holds exactly one TagSet.")
    pairs = []
    for tag in sets[0]:
        if local_name(tag) != "Tag":
            raise MalformedXML(f"Unexpected element {local_name(tag)} in TagSet.")
        fields = {local_name(c): c for c in tag}
        if set(fields) != {"Key", "Value"} or len(tag) != 2:
            raise MalformedXML("Each Tag holds one Key and one Value.")
        pairs.append((fields["Key"].text or "", fields["Value"].text or ""))
    return tag_set(pairs, limit)


def tagging_document(tags: dict[str, str]) -> bytes:
    body = "".join("<Tag>" + el("Key", k) + el("Value", v) + "</Tag>" for k, v in tags.items())
    return document("Tagging", ["<TagSet>", body, "</TagSet>"])


async def _read_tags(request: web.Request, limit: int) -> dict[str, str]:
    return parse_tagging(await read_xml_body(request, request[CALLER_KEY].auth, MAX_TAGGING_BODY), limit)


# --- objects ----------------------------------------------------------------------------------


async def _set_object_tags(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint,
                           tags: dict[str, str]) -> dict[str, str]:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    ctx.require_metadata()
    try:
        result = await ctx.meta.put_object_tags(ep.bucket, ep.key, tags, ep.version_id)
    except ObjstoreError as err:
        raise with_marker_headers(err, request.method) from None
    await publish_record_change(ctx, ep.bucket, ep.key, ep.version_id, result.commit_index,  # for quorum reads
                                result.map_epoch)
    return result.version_header()


async def handle_put_object_tagging(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    tags = await _read_tags(request, MAX_OBJECT_TAGS)
    return web.Response(status=200, headers=await _set_object_tags(ctx, request, ep, tags))


async def handle_delete_object_tagging(ctx: GatewayContext, request: web.Request,
                                       ep: VersionEndpoint) -> web.Response:
    return web.Response(status=204, headers=await _set_object_tags(ctx, request, ep, {}))


async def handle_get_object_tagging(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    found = await owned_version(ctx, request[CALLER_KEY].owner, ep.bucket, ep.key, ep.version_id, request.method)
    return web.Response(body=tagging_document(found.version.tags), headers={**XML, **found.version_header()})


# --- buckets ----------------------------------------------------------------------------------


async def handle_put_bucket_tagging(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    tags = await _read_tags(request, MAX_BUCKET_TAGS)
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    await ctx.meta.put_bucket_tags(ep.bucket, tags)
    return web.Response(status=204)


async def handle_get_bucket_tagging(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    bucket = await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    if not bucket.tags:
        raise NoSuchTagSet(BucketName=bucket.name)
    return web.Response(body=tagging_document(bucket.tags), headers=XML)


async def handle_delete_bucket_tagging(ctx: GatewayContext, request: web.Request,
                                       ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    await ctx.meta.put_bucket_tags(ep.bucket, {})
    return web.Response(status=204)
