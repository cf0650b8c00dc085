"""The request log of storage and metadata nodes: one line per internal request that failed
or was slow, on logger ``objstore.requests`` (every request at DEBUG).

A line names the gateway's request id (``X-Request-Id``, which the gateway sends on every
internal call it makes for an S3 request: :mod:`gateway.request_log`), so one S3 request can
be followed from the gateway's access log into the nodes' logs. Fields: ``request_id``
(``-`` when the call came from no S3 request: heartbeats, repair, admin commands), ``role``,
``op`` (the route's name), ``method``, ``status`` and ``latency_ms``.

Levels: WARNING for a failure (status 5xx, or 401/403: a call the node refused to
authenticate) and for a slow request (``slow_seconds`` or more, long polls excepted: they
wait on purpose); DEBUG for every other request. Other 4xx answers (not found, conflict, not
the leader) are ordinary answers, not failures.

Invariant: a line never holds the path, the query string or a header other than the request
id, so no signature, secret, object key or presigned query reaches a log. The request id is
the caller's text: only ``[A-Za-z0-9._-]``, at most 64 characters, is kept (no log injection).
"""
from __future__ import annotations

import logging
import re

from aiohttp import web

REQUEST_ID_HEADER = "X-Request-Id"  # the gateway's request id, on internal calls it makes for it
SLOW_REQUEST_SECONDS = 1.0
LONG_POLL_PARAMS = ("wait_epoch",)  # a request with one of these waits on purpose: never "slow"
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")

log = logging.getLogger("objstore.requests")


def request_id_of(request: web.Request) -> str:
    """The caller's request id, cut to 64 safe characters; ``-`` for none."""
    return _SAFE_ID.sub("", request.headers.get(REQUEST_ID_HEADER, ""))[:64] or "-"


def failed(status: int) -> bool:
    """A failure worth a line: the node's own error (5xx) or an unauthenticated call."""
    return status >= 500 or status in (401, 403)


def level_of(status: int, seconds: float, long_poll: bool, slow_seconds: float = SLOW_REQUEST_SECONDS) -> int:
    """The level of a request's line: WARNING when it failed or was slow, else DEBUG."""
    if failed(status) or (seconds >= slow_seconds and not long_poll):
        return logging.WARNING
    return logging.DEBUG


def log_internal_request(request: web.Request, role: str, op: str, status: int, seconds: float) -> None:
    """Log one internal request at the level :func:`level_of` gives (nothing below the logger's level)."""
    if not failed(status) and seconds < SLOW_REQUEST_SECONDS and not log.isEnabledFor(logging.DEBUG):
        return  # a DEBUG line nobody keeps: the query is not even looked at
    long_poll = any(p in request.query for p in LONG_POLL_PARAMS)
    level = level_of(status, seconds, long_poll, SLOW_REQUEST_SECONDS)
    if not log.isEnabledFor(level):
        return
    request_id = request_id_of(request)
    why = "failed" if failed(status) else "slow" if level == logging.WARNING else "served"
    log.log(level, "%s %s %s %d in %.1f ms (request %s)", why, request.method, op, status, seconds * 1000,
            request_id, extra={"fields": {
                "request_id": request_id, "role": role, "op": op, "method": request.method, "status": status,
                "latency_ms": round(seconds * 1000, 3)}})
