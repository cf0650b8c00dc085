"""Long answers kept alive: a copy still running after ``KEEPALIVE_AFTER`` seconds is
answered 200 early and kept alive with whitespace until its XML document (or an Error
document) follows, as S3 does; SDKs read an Error inside a 200 copy answer as a failure.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Mapping

from aiohttp import web

from gateway.caller import REQUEST_ID_KEY
from gateway.context import new_request_id
from gateway.responses import XML
from gateway.xml import HEADER, error_document
from objstore.errors import InternalError, ObjstoreError

log = logging.getLogger(__name__)

KEEPALIVE_AFTER = 10.0  # seconds before a long copy is answered 200 early
KEEPALIVE_INTERVAL = 10.0  # seconds between whitespace bytes while it runs


async def respond_with_keepalive(
    request: web.Request,
    work: Awaitable[bytes | tuple[bytes, Mapping[str, str]]],
    headers: Mapping[str, str],
    after: float | None = None,
    interval: float | None = None,
) -> web.StreamResponse:
    """Answer with the XML document ``work`` produces; keep a long one alive with whitespace.

    ``work`` returns the document, or (document, headers) to answer with instead of
    ``headers`` when it finishes in time. If it finishes (or fails) within ``after``
    seconds, the answer is an ordinary response (errors propagate with their own status).
    Otherwise a 200 with ``headers`` is sent at once, then a space every ``interval``
    seconds, then the document, or an S3 Error document if ``work`` failed. If the client
    goes away, ``work`` is cancelled.
    """
    after = KEEPALIVE_AFTER if after is None else after
    interval = KEEPALIVE_INTERVAL if interval is None else interval
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=after)
        if done:
            body, final_headers = _split(task.result(), headers)
            return web.Response(body=body, headers={**XML, **final_headers})
        request_id = request.get(REQUEST_ID_KEY) or new_request_id()  # the middleware sets it
        resp = web.StreamResponse(status=200, headers={**XML, **headers, "x-amz-request-id": request_id})
        await resp.prepare(request)
        await resp.write(HEADER.encode())
        while not (await asyncio.wait({task}, timeout=interval))[0]:
            await resp.write(b" ")
        try:
            body, _ = _split(task.result(), headers)
        except ObjstoreError as err:
            body = error_document(err, request.path, request_id)
        except Exception:  # noqa: BLE001 - reported in the body: the status is already sent
            log.exception("copy to %s failed after the answer started (request %s)", request.path, request_id)
            body = error_document(InternalError(), request.path, request_id)
        await resp.write(body[len(HEADER.encode()):] if body.startswith(HEADER.encode()) else body)
        await resp.write_eof()
        return resp
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _split(result: bytes | tuple[bytes, Mapping[str, str]], headers: Mapping[str, str]) -> tuple[bytes, Mapping[str, str]]:
    return result if isinstance(result, tuple) else (result, headers)
