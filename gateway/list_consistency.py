"""The consistency of a listing (ListObjects, ListObjectsV2, ListObjectVersions).

``strong`` (the default) lists through the metadata leader. ``one`` (the request's
``x-objstore-consistency``, or the bucket's default when it is ``one``) is answered by the
first metadata member the gateway reaches, from its own applied state, follower included,
so it keeps working without a metadata majority; only the bucket's owner may use it (the
ownership check uses the gateway's cached bucket record). The answer says how stale it may
be: ``x-objstore-applied-index`` (the member's) and ``x-objstore-stale-entries`` (how many
committed entries it had not applied: the higher of the commit index it knew and the
newest this gateway has seen in its own writes, minus its applied index).
"""
from __future__ import annotations

from aiohttp import web

from gateway.anonymous import is_anonymous_caller
from gateway.caller import CALLER_KEY
from gateway.consistency import CONSISTENCY_HEADER, STALE_HEADER, read_level
from gateway.context import GatewayContext
from metadata.api.results import LocalRead
from objstore.manifest import LIST_LEVELS

APPLIED_HEADER = "x-objstore-applied-index"


async def listing_level(ctx: GatewayContext, request: web.Request, bucket: str) -> str:
    """"one" when the request may list from any metadata member; "strong" otherwise.
    Raises InvalidArgument for a level listings do not offer, NoSuchBucket."""
    record = await ctx.bucket(bucket)
    level = read_level(request.headers, record.consistency, LIST_LEVELS)
    caller = request[CALLER_KEY]
    if level == "one" and not is_anonymous_caller(caller) and caller.owner == record.owner:
        return "one"
    return "strong"


def listing_headers(ctx: GatewayContext, local: LocalRead | None) -> dict[str, str]:
    """The headers naming how a listing was served (``local``: None for strong)."""
    if local is None:
        return {CONSISTENCY_HEADER: "strong"}
    behind = max(local.commit_index, ctx.newest_commit) - local.applied_index
    return {CONSISTENCY_HEADER: "one", APPLIED_HEADER: str(local.applied_index), STALE_HEADER: str(max(0, behind))}
