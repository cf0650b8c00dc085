"""DeleteObject: remove the version record, then the blobs. Idempotent: a missing key is 204.

The delete itself is :func:`gateway.datapath.write.delete_key`, the one delete path that
each key of DeleteObjects takes too, so both behave identically.
"""
from __future__ import annotations

from aiohttp import web

from gateway.access import owned_bucket
from gateway.caller import CALLER_KEY
from gateway.consistency import COMMIT_INDEX_HEADER
from gateway.context import GatewayContext
from gateway.datapath.write import delete_key
from gateway.endpoints import VersionEndpoint


async def handle_delete_object(ctx: GatewayContext, request: web.Request, ep: VersionEndpoint) -> web.Response:
    await owned_bucket(ctx, request[CALLER_KEY].owner, ep.bucket)
    result = await delete_key(ctx, ep.bucket, ep.key, ep.version_id)
    return web.Response(status=204, headers={**result.headers(), COMMIT_INDEX_HEADER: str(result.commit_index)})
