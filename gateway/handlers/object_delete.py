"""DeleteObject: remove the version record, then the blobs. Idempotent: a missing key is 204."""
from __future__ import annotations

from aiohttp import web

from gateway.context import CTX_KEY
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.object_put import collect_version
from gateway.middleware import ENDPOINT_KEY


async def handle_delete_object(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    await owned_bucket(request, ep.bucket)
    removed = await ctx.meta.delete_object(ep.bucket, ep.key)
    if removed is not None:
        ctx.background(collect_version(ctx, removed))
    return web.Response(status=204)
