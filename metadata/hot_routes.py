"""The metadata node's hot calls, served by the lean HTTP/1.1 front of :mod:`objstore.node.hot_front`.

A strong small GET costs the metadata leader one ``GET /v1/object``; a PUT one command
(``POST /v1/command`` or ``/v1/commands``) and the Raft rounds it starts (``POST
/raft/messages`` on every member). The gateways' long poll of the cluster map and the
storage nodes' heartbeats and repair leases come on the same kept connections, so they
are served here too (a call handed to aiohttp takes its connection with it for good). aiohttp's server spends much of such a call's CPU on its
own machinery; these routes are parsed and answered by the lean front instead, with the
application's own handlers (found by route name) and through the same steps as its
middlewares (:class:`objstore.http_common.InternalCalls`: signature check and replay guard,
metrics and request log, error answers). Every other call, and any of these the front does
not take (a body over its limit, ``Expect``, a percent-encoded path...), is aiohttp's, as
before. ``OBJSTORE_METADATA_FRONT=aiohttp`` serves every call through aiohttp.
"""
from __future__ import annotations

import os
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

from objstore.http_common import InternalCalls
from objstore.node.hot_front import HotRoutes, HotSite

FRONT_ENV = "OBJSTORE_METADATA_FRONT"
SHUTDOWN_SECONDS = 2.0  # a stopping node waits this long for hot calls still served
# (method, path) -> the route's name (its metrics op)
HOT_PATHS: dict[tuple[str, str], str] = {
    ("GET", "/v1/object"): "get_object",
    ("GET", "/v1/bucket"): "get_bucket",
    ("GET", "/v1/credential"): "get_credential",
    ("GET", "/v1/list"): "list_objects",  # a 1000-key page: aiohttp's share of its CPU is worth saving too
    ("GET", "/v1/versions"): "list_object_versions",
    ("POST", "/v1/command"): "command",
    ("POST", "/v1/commands"): "commands",
    ("POST", "/raft/messages"): "raft_messages",
    # Not per request, but on the same pooled connections: a call that aiohttp served would
    # keep its connection, and every call later made on it, off the lean front.
    ("GET", "/v1/cluster"): "get_cluster",  # the gateways' long poll of the cluster map
    ("POST", "/v1/nodes/heartbeat"): "node_heartbeat",
    ("POST", "/v1/repair/lease"): "repair_lease",
}
ROUTES = web.AppKey("hot_routes", HotRoutes)


class _NoDrain:
    """A metadata node does not count its calls for a drain (aiohttp's shutdown waits)."""

    draining = False

    def enter(self) -> None:
        pass

    def leave(self) -> None:
        pass


class MetadataHotRoutes(HotRoutes):
    def route(self, method: str, path: str, headers: CIMultiDictProxy[str]) -> tuple[str, dict[str, str]] | None:
        op = HOT_PATHS.get((method, path))
        return (op, {}) if op is not None and op in self.handlers else None


def add_hot_routes(app: web.Application, calls: InternalCalls) -> None:
    """Serve the application's routes named in :data:`HOT_PATHS` through the lean front too
    (call after every route is added)."""
    handlers: dict[str, Any] = {}
    for (method, _), name in HOT_PATHS.items():
        resource = app.router.named_resources().get(name)
        for route in resource or ():
            if route.method == method:
                handlers[name] = route.handler
    hot = app[ROUTES] = MetadataHotRoutes(app, calls, _NoDrain(), handlers, 0)

    async def finish_hot_calls(app: web.Application) -> None:  # before the replicator closes
        await hot.finish(SHUTDOWN_SECONDS)

    app.on_shutdown.append(finish_hot_calls)


def site(runner: web.AppRunner, host: str, port: int, **kwargs: Any) -> web.TCPSite:
    """Where the node listens: the hot calls by the lean front, the rest by aiohttp (every
    call by aiohttp with ``OBJSTORE_METADATA_FRONT=aiohttp``)."""
    if os.environ.get(FRONT_ENV, "") == "aiohttp" or ROUTES not in runner.app:
        return web.TCPSite(runner, host, port, **kwargs)
    return HotSite(runner, host, port, routes=runner.app[ROUTES], **kwargs)
