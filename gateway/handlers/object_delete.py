"""DeleteObject: remove the version record, then the blobs. Idempotent: a missing key is 204.

``delete_key`` is the one delete path: DeleteObject and each key of DeleteObjects call it
(after checking the caller owns the bucket), so both behave identically. What a delete
does depends on the bucket's versioning (decided by the metadata service, atomically):
unversioned, the key's record goes; versioned, a delete marker is added (its id from this
gateway's clock); with a version id, that version goes for good. Blobs of a version no
record points to any more are collected after the answer.
"""
from __future__ import annotations

from aiohttp import web

from gateway.context import CTX_KEY, GatewayContext
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.object_put import collect_version
from gateway.handlers.versioning import version_id_param
from gateway.middleware import ENDPOINT_KEY
from metadata.api.results import DeleteResult

__all__ = ["DeleteResult", "delete_key", "handle_delete_object"]


async def delete_key(ctx: GatewayContext, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
    """Delete ``key`` (or one version of it) from ``bucket``; the caller checked ownership.

    Raises NoSuchBucket; a missing key is not an error.
    """
    result = await ctx.meta.delete_version(bucket, key, version_id, marker_id=ctx.hlc.next())
    removed = result.removed
    if removed is not None and not removed.delete_marker:
        ctx.background(collect_version(ctx, removed))
    return result


async def handle_delete_object(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    version_id = version_id_param(request)
    await owned_bucket(request, ep.bucket)
    result = await delete_key(ctx, ep.bucket, ep.key, version_id)
    return web.Response(status=204, headers=result.headers())
