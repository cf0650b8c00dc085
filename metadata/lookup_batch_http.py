"""Version lookups answered together: ``POST /v1/objects`` on a metadata node.

    POST /v1/objects   {"lookups": [{"bucket", "key", "version_id"?}, ...]}
                       -> {"results": [{"value": ObjectLookup} | {"error": e}, ...]}

Each lookup is what ``GET /v1/object`` answers for the same query; all of a call's lookups
are answered from one strong read (one lease check or ReadIndex round at the leader), so
the HTTP serve cost and the read's confirmation are paid once for the lot. The read index
is taken when the call is served, after every lookup in it was issued by its caller, so
each answer is at least as new as every write acknowledged before its lookup began (the
client sends lookups that come while a call is in flight in the next call). The results
come in the lookups' order, each the lookup's answer or its own error (NoSuchKey for one
key fails only that lookup). A node that does not lead answers NotLeader for the whole
call. Bounded: at most :data:`MAX_LOOKUPS` lookups and :data:`MAX_BODY` bytes per call.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, TypeVar

from aiohttp import web

from metadata.fsm.machine import MetadataFSM
from objstore.errors import EntityTooLarge, InvalidArgument, ObjstoreError

MAX_LOOKUPS = 256  # lookups in one call
MAX_BODY = 1 << 20  # bytes of one call's body (the lean front's whole-body limit)
PATH = "/v1/objects"
T = TypeVar("T")

Read = Callable[[web.Request, Callable[[MetadataFSM], T]], Awaitable[T]]


def lookups_of(body: Any) -> list[Any]:
    """The lookups of a call's body; InvalidArgument unless 1 to :data:`MAX_LOOKUPS`."""
    items = body.get("lookups") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 0 < len(items) <= MAX_LOOKUPS:
        raise InvalidArgument(f'expected {{"lookups": [lookup, ...]}}, 1 to {MAX_LOOKUPS} of them')
    return items


def _query(item: Any) -> tuple[str, str, str | None]:
    if not isinstance(item, dict):
        raise InvalidArgument("a lookup is an object {bucket, key, version_id}")
    bucket, key, vid = item.get("bucket"), item.get("key"), item.get("version_id")
    if not isinstance(bucket, str) or not isinstance(key, str) or not (vid is None or isinstance(vid, str)):
        raise InvalidArgument("a lookup needs a bucket and a key (strings) and at most a version_id (string)")
    return bucket, key, vid


def answer_all(fsm: MetadataFSM, items: list[Any]) -> list[dict[str, Any]]:
    """Each lookup's answer or error, from ``fsm`` as it is now."""
    results: list[dict[str, Any]] = []
    for item in items:
        try:
            results.append({"value": fsm.lookup_object(*_query(item)).to_dict()})
        except ObjstoreError as err:
            results.append({"error": err.to_dict()})
    return results


def add_routes(app: web.Application, read: Read[list[dict[str, Any]]]) -> None:
    """``read(request, fn)``: ``fn`` applied to the state by one strong read (the app's
    ``_read``: a lease check or ReadIndex; NotLeader on a follower)."""

    async def post_objects(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise EntityTooLarge(f"a lookup batch takes at most {MAX_BODY} bytes")
        try:
            body = await request.json()
        except ValueError as exc:
            raise InvalidArgument(f"request body is not JSON: {exc}") from None
        items = lookups_of(body)
        results = await read(request, lambda fsm: answer_all(fsm, items))
        return web.json_response({"results": results})

    app.router.add_post(PATH, post_objects, name="get_objects")
