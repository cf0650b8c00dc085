"""DeleteObject: remove the version record, then the blobs. Idempotent: a missing key is 204.

``delete_key`` is the one delete path: DeleteObject and each key of DeleteObjects call it
(after checking the caller owns the bucket), so both behave identically.
"""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.context import CTX_KEY, GatewayContext
from gateway.handlers.bucket import owned_bucket
from gateway.handlers.object_put import collect_version
from gateway.middleware import ENDPOINT_KEY
from objstore.errors import NotImplementedOp


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What one delete did, as S3 reports it.

    ``version_id``: the version removed or the delete marker created (None when the
    bucket is unversioned); ``delete_marker``: a delete marker was created or removed.
    """

    version_id: str | None = None
    delete_marker: bool = False

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.delete_marker:
            h["x-amz-delete-marker"] = "true"
        if self.version_id is not None:
            h["x-amz-version-id"] = self.version_id
        return h


async def delete_key(ctx: GatewayContext, bucket: str, key: str, version_id: str | None = None) -> DeleteResult:
    """Delete ``key`` (or one version of it) from ``bucket``; the caller checked ownership.

    Raises NoSuchBucket; a missing key is not an error.
    """
    if version_id is not None:
        raise NotImplementedOp("Deleting a specific object version is not implemented.")
    removed = await ctx.meta.delete_object(bucket, key)
    if removed is not None:
        ctx.background(collect_version(ctx, removed))
    return DeleteResult()


async def handle_delete_object(request: web.Request) -> web.Response:
    ctx = request.app[CTX_KEY]
    ep = request[ENDPOINT_KEY]
    await owned_bucket(request, ep.bucket)
    result = await delete_key(ctx, ep.bucket, ep.key)
    return web.Response(status=204, headers=result.headers())
