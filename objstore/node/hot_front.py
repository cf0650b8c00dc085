"""A lean HTTP/1.1 front for the storage node's hot calls, in front of its aiohttp application.

A small S3 request costs a storage node one short call per blob or manifest; aiohttp's server
spends much of a call's CPU on its own machinery (request and response objects, router,
middleware chain, writer). :class:`HotSite` listens in place of ``web.TCPSite``: each
connection starts with :class:`HotProtocol`, which parses a request head itself and serves the
hot routes directly, with the node's own handlers:

- ``PUT /blobs/{vid}/{shard}`` (a whole body of at most ``HOT_BODY_LIMIT`` bytes),
- ``GET /blobs/{vid}/{shard}`` with ``Range: bytes=a-b`` of at most ``WHOLE_BODY_LIMIT`` bytes
  (answered in one write, as aiohttp's handler does),
- ``DELETE /blobs/{vid}/{shard}``,
- ``PUT /blobs/batch`` (several small blobs, :mod:`objstore.node.blob_batch`),
- ``PUT /manifests``, ``GET /manifests``, ``PUT /manifests/batch``.

Every such request goes through the same steps as in the application
(:class:`objstore.http_common.InternalCalls`: the same signature check and replay guard, the
same metrics and request log, the same error answers; the node's drain count). Anything else
(another route, a percent-encoded path, ``Expect``, ``Transfer-Encoding``, a larger body,
HTTP/1.0, a malformed head: a header name that is not a token, a control character, a
``Content-Length`` that is not ASCII digits) hands the connection, with every byte received
so far, to aiohttp's request handler, which serves it from then on.

Invariants: one request at a time per connection (the next is parsed only once the previous
answer is written); a connection buffers at most one head (``MAX_HEAD``) and one body
(``HOT_BODY_LIMIT``) before it stops reading, and stops parsing while the peer does not read
its answers; a connection that neither received a byte nor was answered for ``KEEPALIVE``
seconds is closed (a body that keeps coming, however slowly, is not cut off), and so is
every idle one when the site stops (busy ones after their answer, which then says
``Connection: close``).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from http import HTTPStatus
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import HttpVersion11, web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from objstore.errors import ObjstoreError
from objstore.http_common import InternalCalls, denied_response, error_response, internal_error_response

log = logging.getLogger(__name__)
MAX_HEAD = 64 * 1024
HOT_BODY_LIMIT = 1024 * 1024
KEEPALIVE = 75.0  # seconds an idle connection is kept (aiohttp's default)
_SMALL_RANGE = re.compile(r"bytes=(\d{1,18})-(\d{1,18})")
# What HTTP/1.1 forbids in a head (a header name that is not a token; a control character
# other than a tab, or a CR or LF that is not a line's CRLF): such a request goes to aiohttp,
# which answers 400 as HTTP says.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The bytes a head may hold: all but the control characters other than a tab (CR and LF are
# counted apart: only as line ends).
_HEAD_BYTES = bytes(b for b in range(256) if b in (0x09, 0x0a, 0x0d) or 0x20 <= b != 0x7f)

Handler = Callable[[Any], Awaitable[web.StreamResponse]]


class LeanRequest:
    """The parts of ``web.Request`` the node's handlers and :class:`InternalCalls` use, over a
    request received whole (or cut short by the connection's end)."""

    __slots__ = ("app", "method", "raw_path", "path", "headers", "match_info", "content_length", "_query", "_qs",
                 "_body")
    version = HttpVersion11

    def __init__(self, app: web.Application, method: str, raw_path: str, path: str, qs: str,
                 headers: CIMultiDictProxy[str], match_info: dict[str, str], body: bytes,
                 content_length: int) -> None:
        self.app, self.method, self.raw_path, self.path = app, method, raw_path, path
        self.headers, self.match_info, self._qs, self._body = headers, match_info, qs, body
        self.content_length = content_length  # as declared: the body may have ended short
        self._query: MultiDictProxy[str] | None = None

    @property
    def host(self) -> str:
        return self.headers.get("Host", "")

    @property
    def query(self) -> MultiDictProxy[str]:
        if self._query is None:
            qs = self._qs
            if "%" in qs or "+" in qs:
                pairs = parse_qsl(qs, keep_blank_values=True)
            else:  # nothing to decode (``ring_epoch=7``): what parse_qsl gives, without its work
                pairs = [(name, value) for name, _, value in (f.partition("=") for f in qs.split("&") if f)]
            self._query = MultiDictProxy(MultiDict(pairs))
        return self._query

    @property
    def content(self) -> "LeanRequest":
        return self

    async def iter_any(self) -> AsyncIterator[bytes]:
        if self._body:
            yield self._body

    async def read(self) -> bytes:
        return self._body

    async def json(self) -> Any:
        return json.loads(self._body)


class HotRoutes:
    """The hot routes of a node's application and what serves them. ``handlers`` maps a route
    name (its metrics ``op``) to the application's handler of it."""

    def __init__(self, app: web.Application, calls: InternalCalls, drain: Any,
                 handlers: dict[str, Handler], whole_body_limit: int) -> None:
        self.app = app
        self.calls = calls
        self.drain = drain  # objstore.node.app.Drain
        self.handlers = handlers
        self.whole_body_limit = whole_body_limit
        self.connections: set[HotProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # requests being served

    def start(self, conn: "HotProtocol", request: LeanRequest, op: str) -> None:
        """Serve ``request`` in a task of its own (:meth:`finish` waits for it)."""
        task = conn.loop.create_task(self.serve(conn, request, op))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the requests being served, then cancel the rest
        (as aiohttp does with its own handlers when the application shuts down)."""
        if not self.tasks:
            return
        _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def route(self, method: str, path: str, headers: CIMultiDictProxy[str]) -> tuple[str, dict[str, str]] | None:
        """(op, match_info) of a hot request, None for any other."""
        if path.startswith("/blobs/"):
            if path == "/blobs/batch":
                return ("put_blob_batch", {}) if method == "PUT" else None
            vid, sep, shard = path[7:].partition("/")
            if not vid or not sep or not shard or "/" in shard:
                return None
            match = {"vid": vid, "shard": shard}
            if method == "PUT":
                return "put_blob", match
            if method == "DELETE":
                return "delete_blob", match
            if method == "GET":
                m = _SMALL_RANGE.fullmatch(headers.get("Range", ""))
                if m and 0 <= int(m.group(2)) - int(m.group(1)) < self.whole_body_limit:
                    return "get_blob", match
            return None
        if path == "/manifests":
            return {"PUT": ("put_manifest", {}), "GET": ("get_manifests", {})}.get(method)
        if path == "/manifests/batch" and method == "PUT":
            return "put_manifest_batch", {}
        return None

    async def serve(self, conn: "HotProtocol", request: LeanRequest, op: str) -> None:
        """Serve one hot request as the application's middlewares would, then answer it."""
        drain, calls = self.drain, self.calls
        drain.enter()
        start = time.perf_counter()
        status = 500
        resp: web.StreamResponse | None = None
        try:
            try:
                if not await calls.authenticated(request):
                    resp = denied_response()
                else:
                    resp = await self.handlers[op](request)
            except ObjstoreError as err:
                resp = error_response(err)
            except web.HTTPException as exc:
                resp = web.Response(status=exc.status, text=exc.text)
            except Exception as exc:  # noqa: BLE001 - the last line of defence
                resp = internal_error_response(request, exc)  # type: ignore[arg-type]
            status = resp.status
        finally:
            calls.observe(request, op, status, time.perf_counter() - start)  # type: ignore[arg-type]
            drain.leave()
            if resp is None:
                conn.abort()
        try:
            conn.answer(resp, close=drain.draining or request.headers.get("Connection", "").lower() == "close")
        except Exception:  # noqa: BLE001 - an answer that cannot be sent ends its connection
            log.exception("answering %s %s failed", request.method, op)
            conn.abort()

    def close_idle(self, idle_for: float) -> None:
        """Close the connections idle for ``idle_for`` seconds or more."""
        now = time.monotonic()
        for conn in list(self.connections):
            conn.close_if_idle(now - idle_for)

    def stop(self) -> None:
        """Close every idle connection now and each busy one after its answer."""
        for conn in list(self.connections):
            conn.closing = True
        self.close_idle(0.0)


class HotProtocol(asyncio.Protocol):
    """One connection: hot requests served here; the first other one hands the connection
    to ``fallback()`` (aiohttp's request handler)."""

    def __init__(self, routes: HotRoutes, fallback: Callable[[], asyncio.Protocol]) -> None:
        self.routes = routes
        self.fallback = fallback
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()  # once, not per request
        self.buf = bytearray()
        self.busy = False
        self.closing = False
        self.idle_since = time.monotonic()
        self._reading = True
        self._writable = True
        self._head: tuple[LeanRequest, str, int, int] | None = None  # request sans body, op, head end, total

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.routes.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.routes.connections.discard(self)
        self.transport = None
        if self._head is not None and not self.busy:
            # The body ended short: the handler sees it so (IncompleteBody), counted and logged.
            request, op, end, _ = self._head
            self._head = None
            request._body = bytes(self.buf[end:])
            self.busy = True
            self.routes.start(self, request, op)
        self.buf.clear()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.idle_since = time.monotonic()  # a head or body still coming is not idle
        if not self.busy:
            self._next()
        if self.transport is not None and len(self.buf) > MAX_HEAD + HOT_BODY_LIMIT and self._reading:
            self._reading = False
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        if not self.busy and self.buf:
            self._next()

    # --- requests -------------------------------------------------------------------------

    def _next(self) -> None:
        """Start the next request if it is here whole; hand the connection off if it is not hot."""
        if self.transport is None or not self._writable:
            return
        if self._head is None:
            end = self.buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self._hand_off()
                return
            head = self._parse_head(end)
            if head is None:
                self._hand_off()
                return
            self._head = head
        request, op, end, total = self._head
        if len(self.buf) < total:
            return
        self._head = None
        request._body = bytes(self.buf[end:total])
        del self.buf[:total]
        self.busy = True
        self.routes.start(self, request, op)

    def _parse_head(self, end: int) -> tuple[LeanRequest, str, int, int] | None:
        raw = self.buf[:end + 2]  # with the last header line's CRLF
        if raw.translate(None, _HEAD_BYTES):  # a control character other than a tab
            return None
        n = raw.count(b"\r\n")
        if raw.count(b"\r") != n or raw.count(b"\n") != n:  # a CR or LF not ending a line
            return None
        lines = raw.decode("latin-1").split("\r\n")
        first = lines[0]
        parts = first.split(" ")
        if len(parts) != 3 or parts[2] != "HTTP/1.1" or not first.isprintable():
            return None
        method, target = parts[0], parts[1]
        path, _, qs = target.partition("?")
        if "%" in path:  # aiohttp decodes it before routing: leave it to aiohttp
            return None
        pairs = []
        token = _TOKEN.fullmatch
        for line in lines[1:-1]:
            name, sep, value = line.partition(":")
            if not sep or not (name.isascii() and name.replace("-", "").isalnum() or token(name)):
                return None
            pairs.append((name, value.strip(" \t")))
        headers = CIMultiDictProxy(CIMultiDict(pairs))
        if "Transfer-Encoding" in headers or "Expect" in headers or len(headers.getall("Content-Length", ())) > 1:
            return None
        raw_length = headers.get("Content-Length", "0")
        # ASCII digits only: str.isdigit() takes '²', which int() refuses.
        if not (raw_length.isascii() and raw_length.isdigit()) or int(raw_length) > HOT_BODY_LIMIT \
                or "Host" not in headers:
            return None
        found = self.routes.route(method, path, headers)
        if found is None:
            return None
        op, match = found
        request = LeanRequest(self.routes.app, method, target, path, qs, headers, match, b"", int(raw_length))
        return request, op, end + 4, end + 4 + int(raw_length)

    def _hand_off(self) -> None:
        transport = self.transport
        assert transport is not None
        self.routes.connections.discard(self)
        self.transport = None
        proto = self.fallback()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        if self.buf:
            data, self.buf = bytes(self.buf), bytearray()
            proto.data_received(data)
        if not self._reading:
            transport.resume_reading()

    def answer(self, resp: web.StreamResponse, close: bool) -> None:
        """Write ``resp`` (a whole ``web.Response``), then take the next request."""
        transport = self.transport
        if transport is None:
            return
        close = close or self.closing
        transport.write(encode_response(resp, close))
        self.busy = False
        self.idle_since = time.monotonic()
        if close:
            transport.close()
            return
        if not self._reading:
            self._reading = True
            transport.resume_reading()
        if self.buf:
            self._next()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self, before: float) -> None:
        if self.transport is not None and not self.busy and self.idle_since <= before:
            self.transport.close()


class LeanResponse:
    """A whole answer a handler made for a :class:`LeanRequest` (see :func:`whole_response`):
    status, headers and body, without ``web.Response``'s machinery, which the lean front
    does not use (it encodes the answer itself)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def reason(self) -> str:
        return _REASONS[self.status]


_REASONS = {s.value: s.phrase for s in HTTPStatus}


def whole_response(request: Any, status: int, headers: dict[str, str], body: bytes) -> web.StreamResponse:
    """An answer with ``headers`` (none of them framing) and the whole ``body``: a
    :class:`LeanResponse` for a request the lean front serves, a ``web.Response`` for aiohttp."""
    if type(request) is LeanRequest:
        return LeanResponse(status, headers, body)  # type: ignore[return-value]
    return web.Response(status=status, headers=headers, body=body)


_NOT_COPIED = frozenset({"content-length", "connection", "transfer-encoding"})


def encode_response(resp: web.StreamResponse, close: bool) -> bytes:
    """The bytes of a whole answer: status line, headers, framing, body."""
    if type(resp) is LeanResponse:
        body = resp.body
        head = "".join([f"HTTP/1.1 {resp.status} {_REASONS[resp.status]}\r\n",
                        *[f"{k}: {v}\r\n" for k, v in resp.headers.items()],
                        f"Content-Length: {len(body)}\r\n" if resp.status not in (204, 304) else "",
                        "Connection: close\r\n\r\n" if close else "\r\n"])
        return head.encode("latin-1") + body
    body = getattr(resp, "body", None) or b""
    if not isinstance(body, (bytes, bytearray)):
        raise TypeError(f"a hot route answered with a {type(body).__name__} body")
    lines = [f"HTTP/1.1 {resp.status} {resp.reason}"]
    lines += [f"{k}: {v}" for k, v in resp.headers.items() if k.lower() not in _NOT_COPIED]
    if resp.status not in (204, 304):
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class HotSite(web.TCPSite):
    """``web.TCPSite`` whose connections start on :class:`HotProtocol` (``routes``)."""

    __slots__ = ("_routes", "_sweeper")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, routes: HotRoutes, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._routes = routes
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        fallback = self._runner.server
        assert fallback is not None
        routes = self._routes
        self._server = await loop.create_server(
            lambda: HotProtocol(routes, fallback), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE / 4)
            self._routes.close_idle(KEEPALIVE)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._routes.stop()
        await super().stop()
