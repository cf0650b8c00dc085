"""A small HTTP/1.1 client for the hot internal calls: whole bodies, pooled keep-alive connections.

A small S3 request makes several internal calls (the blob to each replica, the version
commit, the commit manifests, the version read); each is a short request and a short answer.
A general client (aiohttp's) spends more CPU assembling and parsing such an exchange than
the exchange costs on the socket, so the gateway sends these calls through :class:`HttpPool`:
one ``write`` of the request line, headers and body; the answer read with ``Content-Length``
(or chunked) framing; the connection put back for the next call to the same node. The
messages are those of the general client: signed by the caller (:mod:`objstore.internal_auth`)
exactly as before; storage nodes answer the hot ones with a lean server of their own
(:mod:`objstore.node.hot_front`), metadata nodes with aiohttp.

Invariants:
- A connection is reused only after a complete answer that did not say ``Connection: close``;
  a call that fails, times out or is cancelled closes its connection.
- At most ``max_idle`` idle connections per node, none idle longer than ``idle_seconds``
  (below the servers' keep-alive); the pool's memory is bounded by both.
- A call on a reused connection that the node had closed meanwhile (no byte of an answer
  came back) is sent once more on a new connection; every call sent this way is
  idempotent (blob and manifest writes name their version, commands carry a session
  sequence number).
- Failures are :class:`InternalHttpError` (a ``ConnectionError``) or ``asyncio.TimeoutError``.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Mapping, Protocol

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect"})


class InternalHttpError(ConnectionError):
    """The exchange failed: connection refused or lost, or an answer that is not HTTP/1.1."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


class CallObserver(Protocol):
    """Told of each call: ``start`` may add headers (before signing is done, it must add
    only unsigned ones) and returns a token handed to ``end``."""

    def start(self, method: str, path_qs: str, headers: dict[str, str]) -> object: ...

    def end(self, method: str, path_qs: str, token: object) -> None: ...


class _Conn:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.idle_since = reader, writer, 0.0

    def usable(self, now: float, idle_seconds: float) -> bool:
        return (now - self.idle_since < idle_seconds and not self.reader.at_eof()
                and not self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A reused connection the node had closed: nothing of an answer came back."""


class HttpPool:
    """``tls``: a client context to speak HTTPS (verified by it); None for plain HTTP."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, max_idle: int = 64, idle_seconds: float = 20.0,
                 observer: CallObserver | None = None) -> None:
        self.tls = tls
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self.observer = observer
        self._idle: dict[str, list[_Conn]] = {}
        self.opened = 0  # connections opened so far (reuse shows as calls >> opened)

    async def request(self, method: str, address: str, path_qs: str, headers: Mapping[str, str],
                      body: bytes | None = None, *, timeout: float) -> Answer:
        """One call to ``address`` (``host:port``); the whole answer, whatever its status."""
        hdrs = dict(headers)
        token = self.observer.start(method, path_qs, hdrs) if self.observer is not None else None
        lines = [f"{method} {path_qs} HTTP/1.1", f"Host: {address}"]
        lines += [f"{k}: {v}" for k, v in hdrs.items() if k.lower() not in _FRAMING]
        lines.append(f"Content-Length: {len(body) if body else 0}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            async with asyncio.timeout(timeout):
                conn = self._checkout(address)
                if conn is not None:
                    try:
                        return await self._exchange(address, conn, method, data, reused=True)
                    except _Stale:
                        pass
                conn = await self._open(address)
                try:
                    return await self._exchange(address, conn, method, data, reused=False)
                except _Stale:
                    raise InternalHttpError(f"{address} closed the connection without an answer") from None
        finally:
            if self.observer is not None:
                self.observer.end(method, path_qs, token)

    async def _exchange(self, address: str, conn: _Conn, method: str, data: bytes, reused: bool) -> Answer:
        try:
            conn.writer.write(data)
            answer, keep = await _read_answer(conn.reader, method, reused)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, _Stale):
                raise
            if isinstance(exc, (OSError, EOFError, ValueError, asyncio.LimitOverrunError)):
                raise InternalHttpError(f"{address}: {exc!r}") from None
            raise
        if keep:
            self._checkin(address, conn)
        else:
            conn.close()
        return answer

    def _checkout(self, address: str) -> _Conn | None:
        idle = self._idle.get(address)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.usable(now, self.idle_seconds):
                return conn
            conn.close()
        return None

    def _checkin(self, address: str, conn: _Conn) -> None:
        idle = self._idle.setdefault(address, [])
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _open(self, address: str) -> _Conn:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        try:
            reader, writer = await asyncio.open_connection(
                host, int(port), ssl=self.tls, server_hostname=host if self.tls is not None else None,
                limit=MAX_HEAD)
        except OSError as exc:
            raise InternalHttpError(f"{address} unreachable: {exc!r}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.opened += 1
        return _Conn(reader, writer)

    async def close(self) -> None:
        """Close every idle connection (calls in flight close theirs when they end)."""
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


async def _read_answer(reader: asyncio.StreamReader, method: str, reused: bool) -> tuple[Answer, bool]:
    """One answer: (answer, whether the connection may carry another call)."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if reused and not exc.partial:
                raise _Stale() from None
            raise
        except ConnectionResetError:
            if reused:
                raise _Stale() from None
            raise
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ValueError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status >= 200:
            break  # 1xx (we never ask for 100-continue): skip to the final answer
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304):
        return Answer(status, headers, b""), keep
    if "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= MAX_BODY:
            raise ValueError(f"answer of {length} bytes")
        return Answer(status, headers, await reader.readexactly(length)), keep
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Answer(status, headers, await _read_chunked(reader)), keep
    body = await reader.read(MAX_BODY + 1)  # framed by the connection's end
    if len(body) > MAX_BODY:
        raise ValueError("answer too large")
    return Answer(status, headers, body), False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise ValueError("answer too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
