"""aiohttp pieces every internal service shares: auth and error middleware, /health, /metrics.

Health: ``/health`` (kept for scripts and the launcher) and ``/health/live`` answer 200
while the process runs; ``/health/ready`` answers 200 when the process can serve and 503
(with the reason) when not, as the role's ``ready`` check decides. ``/metrics`` requires
``Authorization: Bearer <token>`` when the process has a metrics token (compared in
constant time); the health paths never need auth.

Internal services (storage nodes, metadata nodes) speak JSON. An :class:`ObjstoreError`
raised by a handler becomes ``{"code", "message", "extra"}`` with its HTTP status;
:func:`objstore.errors.raise_for_error_body` turns such a response back into the same
exception on the client side (which so needs no aiohttp server code).
"""
from __future__ import annotations

import hmac
import logging
import time
from typing import Any, Awaitable, Callable

from aiohttp import web

from objstore import internal_auth
from objstore.errors import ObjstoreError
from objstore.internal_request_log import REQUEST_ID_HEADER, log_internal_request
from objstore.metrics import Metrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PATHS = ("/health", "/metrics", "/health/live", "/health/ready")
Ready = Callable[[], Awaitable[tuple[bool, str]]]  # (can serve, why not)


def error_response(err: ObjstoreError) -> web.Response:
    return web.json_response(err.to_dict(), status=err.status)


def denied_response() -> web.Response:
    """The answer to an internal request that failed authentication."""
    return web.json_response(
        {"code": "AccessDenied", "message": "internal request not authenticated", "extra": {}}, status=403
    )


def internal_error_response(request: web.Request, exc: Exception) -> web.Response:
    """The answer to a handler's unexpected exception (logged with its traceback)."""
    log.exception("internal error on %s %s (request %s)", request.method, request.path,
                  request.headers.get(REQUEST_ID_HEADER, "-"), exc_info=exc)
    return web.json_response(
        {"code": "InternalError", "message": f"{type(exc).__name__}: {exc}", "extra": {}}, status=500
    )


class InternalCalls:
    """What every internal request goes through, around its handler: metrics and the request
    log (:mod:`objstore.internal_request_log`), cluster-secret auth (one replay guard), and
    error mapping. :meth:`middlewares` applies them in an aiohttp application; a server that
    dispatches some requests itself (:mod:`objstore.node.hot_front`) calls the same methods."""

    def __init__(self, secret: str, metrics: Metrics, op_of: Callable[[web.Request], str]) -> None:
        self.secret = secret
        self.metrics = metrics
        self.op_of = op_of
        self.replay = internal_auth.ReplayGuard(since=time.time() - 0.001)  # nothing signed before this process

    def observe(self, request: web.Request, op: str, status: int, seconds: float) -> None:
        """Count and log one served request (not a public path)."""
        self.metrics.observe_request(op, status, seconds)
        log_internal_request(request, self.metrics.role, op, status, seconds)

    async def authenticated(self, request: web.Request) -> bool:
        """Whether the request is signed by the cluster secret, for this node, fresh, and its
        body matches its signed tag (a ``sha256:`` body is read whole to check it)."""
        if not internal_auth.verify_headers(self.secret, request.method, request.raw_path, request.headers,
                                            target=request.host, replay=self.replay):
            return False
        tag = request.headers.get(internal_auth.BODY_HEADER, "")
        body = await request.read() if tag.startswith("sha256:") else None
        return internal_auth.body_matches(tag, request.content_length, body)

    def middlewares(self) -> list:
        @web.middleware
        async def metrics_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            start = time.perf_counter()
            status = 500
            try:
                resp = await handler(request)
                status = resp.status
                return resp
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                if request.path not in PUBLIC_PATHS:
                    self.observe(request, self.op_of(request), status, time.perf_counter() - start)

        @web.middleware
        async def auth_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path in PUBLIC_PATHS:
                return await handler(request)
            if not await self.authenticated(request):
                return denied_response()
            return await handler(request)

        @web.middleware
        async def error_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            except ObjstoreError as err:
                return error_response(err)
            except web.HTTPException:
                raise
            except Exception as exc:  # noqa: BLE001 - the last line of defence
                return internal_error_response(request, exc)

        return [metrics_mw, auth_mw, error_mw]


def internal_middlewares(secret: str, metrics: Metrics, op_of: Callable[[web.Request], str]) -> list:
    """Middlewares: metrics and the request log (outermost: :mod:`objstore.internal_request_log`),
    then cluster-secret auth, then error mapping (:class:`InternalCalls`)."""
    return InternalCalls(secret, metrics, op_of).middlewares()


async def _always_ready() -> tuple[bool, str]:
    return True, ""


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries ``Bearer <token>`` (constant-time compare)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def add_health_and_metrics(app: web.Application, metrics: Metrics, health: Callable[[], dict[str, Any]],
                           ready: Ready = _always_ready, metrics_token: str = "") -> None:
    async def health_handler(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **health()})

    async def live_handler(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready_handler(request: web.Request) -> web.Response:
        ok, reason = await ready()
        return web.json_response({"status": "ready" if ok else "not ready", "reason": reason},
                                 status=200 if ok else 503)

    async def metrics_handler(request: web.Request) -> web.Response:
        if metrics_token and not bearer_matches(request.headers.get("Authorization"), metrics_token):
            return web.json_response({"code": "AccessDenied", "message": "/metrics needs its bearer token"},
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        body, content_type = metrics.render()
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    app.router.add_get("/health", health_handler)
    app.router.add_get("/health/live", live_handler)
    app.router.add_get("/health/ready", ready_handler)
    app.router.add_get("/metrics", metrics_handler)
