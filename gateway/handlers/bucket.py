"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""
from __future__ import annotations

from aiohttp import web

from gateway.access import owned_bucket
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.endpoints import BucketEndpoint, ServiceEndpoint
from gateway.responses import XML, owner_element
from gateway.xml import document, el, iso8601, parse_create_bucket
from objstore.erasure.policy import check_ec_policy
from objstore.errors import BucketAlreadyExists, InvalidArgument
from objstore.naming import validate_bucket_name
from objstore.types import Policy


async def handle_list_buckets(ctx: GatewayContext, request: web.Request, ep: ServiceEndpoint) -> web.Response:
    owner = request[CALLER_KEY].owner
    buckets = await ctx.meta.list_buckets(owner)
    parts = [
        owner_element(owner),
        "<Buckets>",
        *(
            "<Bucket>" + el("Name", b.name) + el("CreationDate", iso8601(b.created)) + "</Bucket>"
            for b in buckets
        ),
        "</Buckets>",
    ]
    return web.Response(body=document("ListAllMyBucketsResult", parts), headers=XML)


async def handle_create_bucket(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    name = ep.bucket
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
    live = [n for n in ctx.topology.map.nodes if n.state == "up"]
    if parsed.kind == "ec":
        if not ctx.topology.map.nodes:
            await ctx.topology.refresh()
        check_ec_policy(parsed, sum(n.state != "removed" for n in ctx.topology.map.nodes))
    elif live and parsed.n > len(live):
        raise InvalidArgument(f"Data policy {policy} needs {parsed.n} storage nodes; the cluster has {len(live)}.")
    try:
        await ctx.meta.create_bucket(name, request[CALLER_KEY].owner, str(parsed), ctx.clock())
    except BucketAlreadyExists as err:
        err.extra.setdefault("BucketName", name)
        raise
    return web.Response(status=200, headers={"Location": f"/{name}"})


async def handle_head_bucket(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    return web.Response(status=200, headers={"x-amz-bucket-region": ctx.cfg.region})


async def handle_delete_bucket(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    ctx.forget_bucket(ep.bucket)
    await ctx.meta.delete_bucket(ep.bucket)
    return web.Response(status=204)


async def handle_get_bucket_location(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    region = "" if ctx.cfg.region == "us-east-1" else ctx.cfg.region
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{region}</LocationConstraint>'
    ).encode()
    return web.Response(body=body, headers=XML)
