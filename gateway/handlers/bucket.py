"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""
from __future__ import annotations

import time

from aiohttp import web

from gateway.context import CTX_KEY
from gateway.middleware import ENDPOINT_KEY, OWNER_KEY
from gateway.xml import document, el, iso8601, parse_create_bucket
from objstore.errors import AccessDenied, BucketAlreadyExists, InvalidArgument
from objstore.naming import validate_bucket_name
from objstore.types import Bucket, Policy

XML = {"Content-Type": "application/xml"}


async def owned_bucket(request: web.Request, name: str, cached: bool = False) -> Bucket:
    """The bucket, if the caller owns it; NoSuchBucket or AccessDenied otherwise.

    ``cached`` allows a record a few seconds old (for its immutable owner and policy).
    """
    ctx = request.app[CTX_KEY]
    bucket = await (ctx.bucket(name) if cached else ctx.meta.get_bucket(name))
    if bucket.owner != request[OWNER_KEY]:
        raise AccessDenied(BucketName=name)
    return bucket


async def handle_list_buckets(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    owner = request[OWNER_KEY]
    buckets = await ctx.meta.list_buckets(owner)
    parts = [
        "<Owner>" + el("ID", owner) + el("DisplayName", owner) + "</Owner>",
        "<Buckets>",
        *(
            "<Bucket>" + el("Name", b.name) + el("CreationDate", iso8601(b.created)) + "</Bucket>"
            for b in buckets
        ),
        "</Buckets>",
    ]
    return web.Response(body=document("ListAllMyBucketsResult", parts), headers=XML)


async def handle_create_bucket(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name = request[ENDPOINT_KEY].bucket
    validate_bucket_name(name)
    body = await request.read()
    location = parse_create_bucket(body)
    if location and location != ctx.cfg.region:
        raise InvalidArgument(
            f"The specified location-constraint '{location}' is not valid for this endpoint (region {ctx.cfg.region}).",
            ArgumentName="LocationConstraint",
            ArgumentValue=location,
        )
    policy = request.headers.get("x-objstore-policy", ctx.cfg.default_policy)
    parsed = Policy.parse(policy)
    if parsed.kind != "replica":
        raise InvalidArgument(f"Data policy {policy} is not supported yet; use replica:N.")
    live = [n for n in ctx.topology.map.nodes if n.state == "up"]
    if live and parsed.n > len(live):
        raise InvalidArgument(f"Data policy {policy} needs {parsed.n} storage nodes; the cluster has {len(live)}.")
    try:
        await ctx.meta.create_bucket(name, request[OWNER_KEY], str(parsed), time.time())
    except BucketAlreadyExists as err:
        err.extra.setdefault("BucketName", name)
        raise
    return web.Response(status=200, headers={"Location": f"/{name}"})


async def handle_head_bucket(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    await owned_bucket(request, request[ENDPOINT_KEY].bucket)
    return web.Response(status=200, headers={"x-amz-bucket-region": ctx.cfg.region})


async def handle_delete_bucket(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    name = request[ENDPOINT_KEY].bucket
    await owned_bucket(request, name)
    ctx.forget_bucket(name)
    await ctx.meta.delete_bucket(name)
    return web.Response(status=204)


async def handle_get_bucket_location(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    await owned_bucket(request, request[ENDPOINT_KEY].bucket)
    region = "" if ctx.cfg.region == "us-east-1" else ctx.cfg.region
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{region}</LocationConstraint>'
    ).encode()
    return web.Response(body=body, headers=XML)
