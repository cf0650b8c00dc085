"""Bucket policies: PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy (``?policy``).

Only the bucket's owner may use them. The policy is JSON in the request body, checked whole
by :mod:`objstore.bucket_policy` (400 MalformedPolicy, nothing stored, for anything objstore
does not honour) and stored, as sent, in the bucket record by one metadata command. A
bucket without a policy answers GetBucketPolicy with 404 NoSuchBucketPolicy; deleting a
policy that does not exist succeeds (204), as in S3.
"""
from __future__ import annotations

from aiohttp import web

from gateway.access import owned_bucket
from gateway.caller import CALLER_KEY
from gateway.context import GatewayContext
from gateway.datapath.body import declared_size, read_xml_body
from gateway.endpoints import BucketEndpoint
from objstore import bucket_policy
from objstore.errors import MalformedPolicy, NoSuchBucketPolicy


async def handle_put_bucket_policy(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    caller = request[CALLER_KEY]
    await owned_bucket(ctx, caller.owner, ep.bucket)
    if declared_size(request, caller.auth) > bucket_policy.MAX_POLICY_BYTES:
        raise MalformedPolicy(f"Policies are limited to {bucket_policy.MAX_POLICY_BYTES} bytes.")
    body = await read_xml_body(request, caller.auth, bucket_policy.MAX_POLICY_BYTES)
    bucket_policy.parse(body, ep.bucket)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPolicy("Policies must be UTF-8 JSON.") from None
    await ctx.meta.put_bucket_policy(ep.bucket, text)
    ctx.forget_bucket(ep.bucket)
    return web.Response(status=204)


async def handle_get_bucket_policy(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    bucket = await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    if not bucket.access_policy:
        raise NoSuchBucketPolicy(BucketName=ep.bucket)
    return web.Response(body=bucket.access_policy.encode("utf-8"), headers={"Content-Type": "application/json"})


async def handle_delete_bucket_policy(ctx: GatewayContext, request: web.Request, ep: BucketEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    await ctx.meta.put_bucket_policy(ep.bucket, "")
    ctx.forget_bucket(ep.bucket)
    return web.Response(status=204)
