"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""
from __future__ import annotations

from typing import Sequence

from aiohttp import web

from gateway.access import owned_bucket
from gateway.anonymous import canned_public_read, may_locate
from gateway.public_access import opened_bucket
from gateway.caller import CALLER_KEY
from gateway.consistency import WRITE_QUORUM_HEADER, bucket_level, requested_write_quorum
from gateway.context import GatewayContext
from gateway.datapath.garbage import collect_parts
from gateway.endpoints import BucketEndpoint, ServiceEndpoint
from gateway.query import encode_token
from gateway.responses import XML, owner_element
from gateway.xml import document, el, iso8601, parse_create_bucket
from objstore.erasure.policy import check_ec_policy
from objstore.errors import BucketAlreadyExists, BucketAlreadyOwnedByYou, InvalidArgument
from objstore.naming import validate_bucket_name
from objstore.types import Bucket, Policy



def bucket_page(buckets: Sequence[Bucket], ep: ServiceEndpoint, region: str) -> tuple[list[Bucket], str | None]:
    """(the buckets of the page ``ep`` asks for, by name; the continuation token of the
    next page, None when this one is the last). Every bucket is in ``region``."""
    if ep.bucket_region is not None and ep.bucket_region != region:
        return [], None
    chosen = sorted((b for b in buckets if b.name.startswith(ep.prefix or "") and b.name > ep.after),
                    key=lambda b: b.name)
    page = chosen[: ep.max_buckets]
    return page, encode_token(page[-1].name) if len(chosen) > len(page) else None


async def handle_list_buckets(ctx: GatewayContext, request: web.Request, ep: ServiceEndpoint) -> web.Response:
    owner = request[CALLER_KEY].owner
    page, token = bucket_page(await ctx.meta.list_buckets(owner), ep, ctx.cfg.region)
    parts = [
        owner_element(owner),
        "<Buckets>",
        *(
            "<Bucket>" + el("Name", b.name) + el("CreationDate", iso8601(b.created))
            + el("BucketRegion", ctx.cfg.region) + "</Bucket>"
            for b in page
        ),
        "</Buckets>",
    ]
    if token is not None:
        parts.append(el("ContinuationToken", token))
    if ep.prefix is not None:
        parts.append(el("Prefix", ep.prefix))
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
    write_quorum = requested_write_quorum(request.headers.get(WRITE_QUORUM_HEADER), parsed)
    level = bucket_level(request.headers)
    try:
        await ctx.meta.create_bucket(name, request[CALLER_KEY].owner, str(parsed), ctx.clock(), write_quorum,
                                     consistency=level)
    except BucketAlreadyOwnedByYou:
        if not recreating_is_success(ctx.cfg.region):
            raise
    except BucketAlreadyExists as err:
        err.extra.setdefault("BucketName", name)
        raise
    if canned_public_read(request.headers.get("x-amz-acl"), bucket=True):
        await ctx.meta.set_bucket_public_read(name, True)
    return web.Response(status=200, headers={"Location": f"/{name}"})


def recreating_is_success(region: str) -> bool:
    """Whether creating a bucket the caller already owns succeeds (changing nothing): in
    us-east-1 S3 answers 200 for compatibility; in every other region
    BucketAlreadyOwnedByYou. (Another owner's bucket is BucketAlreadyExists everywhere.)"""
    return region == "us-east-1"


async def handle_head_bucket(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    return web.Response(status=200, headers={"x-amz-bucket-region": ctx.cfg.region})


async def handle_delete_bucket(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    ctx.forget_bucket(ep.bucket)
    try:
        garbage = await ctx.meta.delete_bucket(ep.bucket)
    finally:
        ctx.forget_bucket(ep.bucket)  # and what was read while the delete was under way
    if garbage.parts:  # the parts of uploads in progress, discarded with the bucket
        ctx.background(collect_parts(ctx.storage, ctx.topology, garbage.parts))
    return web.Response(status=204)


async def handle_get_bucket_location(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await opened_bucket(ctx, request[CALLER_KEY], ep.bucket, may_locate)
    region = "" if ctx.cfg.region == "us-east-1" else ctx.cfg.region
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{region}</LocationConstraint>'
    ).encode()
    return web.Response(body=body, headers=XML)
