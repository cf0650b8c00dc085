"""The gateway's one middleware: request id, routing, authentication, errors, metrics.

Order of work for every request: assign a request id (``ctx.request_ids``); parse the
endpoint (pure, query values included); check header limits; authenticate with SigV4
against ``ctx.clock`` (an unsigned request is the anonymous caller, refused AccessDenied
unless the operation is an anonymous read: :mod:`gateway.anonymous`); call the handler as ``handler(ctx, request, endpoint)``, with the
caller and the request id on the request (:mod:`gateway.caller`). Any ObjstoreError becomes S3
error XML with its status; anything else is logged and answered as 500 InternalError with
the request id, so no client ever sees a stack trace or a half-written success.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from gateway.anonymous import ANONYMOUS, check_anonymous_op, is_anonymous
from gateway.auth import sigv2, sigv4
from gateway.caller import CALLER_KEY, REQUEST_ID_KEY, Caller
from gateway.context import CTX_KEY, GatewayContext
from gateway.request_log import REQUEST_ID, body_bytes, log_request
from gateway.router import parse_endpoint, split_host_bucket
from gateway.unsupported import check_expected_owner
from gateway.xml import error_document
from objstore.errors import (
    InternalError,
    InvalidAccessKeyId,
    MetadataTooLarge,
    ObjstoreError,
    RequestHeaderSectionTooLarge,
    SlowDown,
)
from objstore.http_common import PUBLIC_PATHS

log = logging.getLogger(__name__)

MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values, as S3
MAX_HEADER_SECTION = 16 * 1024

# handle_<op>(ctx, request, endpoint), the endpoint of the type gateway.endpoints.OPERATIONS names.
Handler = Callable[[GatewayContext, web.Request, Any], Awaitable[web.StreamResponse]]


def _check_header_limits(request: web.Request) -> None:
    total = 0
    has_meta = False
    for k, v in request.raw_headers:
        total += len(k) + len(v) + 4
        if not has_meta and k[:11].lower() == b"x-amz-meta-":
            has_meta = True
    if total > MAX_HEADER_SECTION:
        raise RequestHeaderSectionTooLarge(f"Your request header section is {total} bytes; the maximum is {MAX_HEADER_SECTION}.")
    if not has_meta:  # no user metadata: nothing more to count
        return
    meta = sum(len(k) + len(v) for k, v in request.headers.items() if k.lower().startswith("x-amz-meta-"))
    if meta > MAX_USER_METADATA:
        raise MetadataTooLarge(
            f"Your metadata headers are {meta} bytes; the maximum is {MAX_USER_METADATA}.",
            Size=meta,
            MaxSizeAllowed=MAX_USER_METADATA,
        )


def make_middleware(op_handlers: Mapping[str, Handler]) -> Callable:
    in_flight = 0  # requests being served; beyond cfg.max_concurrent_requests: 503 SlowDown

    @web.middleware
    async def s3_middleware(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        nonlocal in_flight
        ctx = request.app[CTX_KEY]
        request_id = ctx.request_ids()
        request[REQUEST_ID_KEY] = request_id
        start = time.perf_counter()
        op = "Unknown"
        status = 500
        admitted = in_flight < ctx.cfg.max_concurrent_requests
        in_flight += admitted
        ctx.metrics.serving += 1
        error_code = ""
        endpoint = None
        sent: web.StreamResponse | None = None
        REQUEST_ID.set(request_id)
        try:
            if not admitted:
                raise SlowDown()
            if request.path in PUBLIC_PATHS and not _s3_signed(request):
                resp = await handler(request)
                status = resp.status
                op = request.path[1:]
                return resp
            endpoint = parse_endpoint(
                request.method,
                request.host,
                request.path,
                request.rel_url.query,
                ctx.cfg.virtual_host_suffixes,
                headers=request.headers,
            )
            op = endpoint.op
            _check_header_limits(request)
            caller = await authenticate(ctx, request)
            request[CALLER_KEY] = caller
            check_anonymous_op(caller, endpoint)
            check_expected_owner(request.headers, caller.owner)
            resp = await op_handlers[endpoint.op](ctx, request, endpoint)
            resp.headers.setdefault("x-amz-request-id", request_id)
            ctx.metrics.observe_consistency(resp.headers.get("x-objstore-consistency"))
            status = resp.status
            sent = resp
            return resp
        except ObjstoreError as err:
            status = err.status
            error_code = err.code
            if err.status >= 500:
                log.warning("%s %s -> %s %s (request %s)", request.method, request.path, err.code, err.message, request_id)
            sent = _error_response(request, err, request_id)
            return sent
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception:  # noqa: BLE001 - last line of defence
            log.exception("internal error, request %s: %s %s", request_id, request.method, request.path)
            status = 500
            error_code = InternalError.code
            sent = _error_response(request, InternalError(), request_id)
            return sent
        finally:
            in_flight -= admitted
            ctx.metrics.serving -= 1
            seconds = time.perf_counter() - start
            ctx.metrics.observe_request(op, status, seconds)
            if op not in _UNLOGGED:
                log_request(request_id, op, endpoint.bucket if endpoint is not None else None, status, error_code,
                            request.content_length or 0, body_bytes(sent), seconds)
            if error_code:
                ctx.metrics.observe_error(error_code)
            if endpoint is not None and CALLER_KEY in request:
                ctx.metrics.observe_bucket(endpoint.bucket, op, status)

    return s3_middleware


_UNLOGGED = {p[1:] for p in PUBLIC_PATHS}  # health checks and scrapes: no request log line


def _s3_signed(request: web.Request) -> bool:
    """Whether a request carries an S3 signature (a health or metrics path is then S3: a
    bucket of that name); a Bearer token (for /metrics) is not one."""
    auth = request.headers.get("Authorization")
    return auth is not None and not auth.lower().startswith("bearer ")


def _error_response(request: web.Request, err: ObjstoreError, request_id: str) -> web.Response:
    headers = {"x-amz-request-id": request_id, "Content-Type": "application/xml"}
    # Extras named like response headers travel as headers (e.g. x-amz-delete-marker).
    headers.update({k: str(v) for k, v in err.extra.items() if k.startswith("x-amz-")})
    if request.method == "HEAD":
        # HEAD responses carry no body; the status and headers tell the client.
        return web.Response(status=err.status, headers={**headers, "x-amz-error-code": err.code})
    return web.Response(status=err.status, body=error_document(err, request.path, request_id), headers=headers)


async def authenticate(ctx: GatewayContext, request: web.Request) -> Caller:
    """Verify SigV4 (or a SigV2 presigned URL) at ``ctx.clock``'s time; the caller it proves
    (:data:`gateway.anonymous.ANONYMOUS` for a request that carries no signature at all)."""
    if is_anonymous(request.headers, request.rel_url.query):
        return ANONYMOUS
    raw_path, _, raw_query = request.raw_path.partition("?")
    now = datetime.fromtimestamp(ctx.clock(), timezone.utc)
    if "Authorization" not in request.headers and sigv2.is_presigned_v2(raw_query):
        v2 = sigv2.parse_presigned(request.method, raw_path, raw_query, request.headers, now,
                                   split_host_bucket(request.host, ctx.cfg.virtual_host_suffixes))
        cred = await ctx.credential(v2.access_key)
        if cred is None:
            raise InvalidAccessKeyId(AWSAccessKeyId=v2.access_key)
        return Caller(cred.owner, sigv2.check_signature(v2, cred.secret_key))
    parsed = sigv4.parse_request(
        request.method, raw_path, raw_query, request.headers, now,
        region=None, max_skew=timedelta(seconds=ctx.cfg.max_skew_seconds),
    )
    cred = await ctx.credential(parsed.access_key)
    if cred is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=parsed.access_key)
    return Caller(cred.owner, sigv4.check_signature(parsed, cred.secret_key))
