"""The gateway's request log: one line per S3 request, on logger ``objstore.access``.

Fields: ``request_id``, ``op``, ``bucket`` (``-`` for none), ``status``, ``error`` (the S3
error code, if any), ``bytes_in`` (the request's Content-Length), ``bytes_out`` (the
response body) and ``latency_ms``. Never the path's key, the query string, a header or a
signature, so no presigned URL or credential reaches a log (keys are the caller's data).

The request id also travels to metadata and storage nodes as ``X-Request-Id`` on every
internal call the request makes (``REQUEST_ID``, a context variable the gateway's client
session reads: :meth:`gateway.metrics.GatewayMetrics.trace_config`); their error log lines
name it. The header is not signed (not ``X-Objstore-*``): it only correlates log lines.
"""
from __future__ import annotations

import contextvars
import logging

from aiohttp import web

REQUEST_ID = contextvars.ContextVar("objstore_request_id", default="")
_NAME = "objstore.access"
access = logging.getLogger(_NAME)


def body_bytes(resp: web.StreamResponse | None) -> int:
    """Bytes of a response body: its length once sent, else its Content-Length."""
    if resp is None:
        return 0
    return resp.body_length if resp.prepared else (resp.content_length or 0)


def log_request(request_id: str, op: str, bucket: str | None, status: int, error: str,
                bytes_in: int, bytes_out: int, seconds: float) -> None:
    if not access.isEnabledFor(logging.INFO):
        return
    # The record made directly, as Logger.info would but without looking up the caller's
    # file and line (a stack walk per request; no log format shows them).
    bucket = bucket or "-"
    access.handle(access.makeRecord(_NAME, logging.INFO, __file__, 0, "%s %s %d", (op, bucket, status), None,
                                    extra={"fields": {
                                        "request_id": request_id, "op": op, "bucket": bucket, "status": status,
                                        "error": error or "-", "bytes_in": bytes_in, "bytes_out": bytes_out,
                                        "latency_ms": round(seconds * 1000, 3)}}))
