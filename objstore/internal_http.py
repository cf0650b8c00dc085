"""A small HTTP/1.1 client for the hot internal calls: whole bodies, pooled keep-alive connections.

A small S3 request makes several internal calls (the blob to each replica, the version
commit, the commit manifests, the version read); each is a short request and a short answer.
A general client (aiohttp's) spends more CPU assembling and parsing such an exchange than
the exchange costs on the socket, so the gateway sends these calls through :class:`HttpPool`:
one ``write`` of the request line, headers and body; the answer parsed by the connection's
protocol as its bytes arrive (``Content-Length``, chunked, or closing framing) and handed to
the call whole, with no stream reader in between; the connection put back for the next call
to the same node. Every message is signed by the caller (:mod:`objstore.internal_auth`)
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
  sequence number, Raft takes a message delivered twice as once, a snapshot chunk sent
  twice is refused as out of order and the transfer starts over).
- An answer is bounded as it arrives: its head (``MAX_HEAD``), its body (``MAX_BODY``), a
  chunk-size line (``MAX_CHUNK_LINE``) and the trailers (``MAX_HEAD``); past a bound, or on a
  malformed line, the call fails and its connection is closed.
- Failures are :class:`InternalHttpError` (a ``ConnectionError``) or ``asyncio.TimeoutError``.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, TypeVar

MAX_HEAD = 64 * 1024  # an answer's head, and the trailer section of a chunked answer
MAX_BODY = 64 * 1024 * 1024
MAX_CHUNK_LINE = 4096  # a chunk-size line (the size and any extensions)
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


class _Conn(asyncio.Protocol):
    """One connection, read by the event loop's callbacks: the answer to the call in flight
    is parsed from the bytes as they arrive and handed to its waiter whole (no stream
    reader between the socket and the call)."""

    __slots__ = ("transport", "idle_since", "closed", "_buf", "_waiter", "_method", "_reused", "_got",
                 "_head", "_chunks")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.idle_since = 0.0
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[Answer, bool]] | None = None
        self._method = ""
        self._reused = False
        self._got = False  # a byte of the current answer came
        self._head: tuple[int, dict[str, str], bool] | None = None  # status, headers, keep-alive
        self._chunks: _Chunked | None = None  # the chunked body being read

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes no call asked for (the node wrote past its answer, or to an idle
            # connection): the connection cannot carry another call, and is not read on.
            self._buf.clear()
            self.close()
            return
        self._buf += data
        self._got = True
        try:
            self._parse(eof=False)
        except (ValueError, OSError) as exc:
            self._waiter.set_exception(exc)

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    # --- the call ------------------------------------------------------------------------

    def usable(self, now: float, idle_seconds: float) -> bool:
        return (now - self.idle_since < idle_seconds and not self.closed and not self._buf
                and self.transport is not None and not self.transport.is_closing())

    def send(self, data: bytes, method: str, reused: bool) -> "asyncio.Future[tuple[Answer, bool]]":
        """Send one request; the future is its (answer, whether the connection may be reused)."""
        assert self.transport is not None
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self._method, self._reused, self._got, self._head, self._chunks = method, reused, False, None, None
        if self.closed:
            self._ended(None)
        else:
            self.transport.write(data)
        return waiter

    def done(self) -> None:
        self._waiter = None

    def expire(self) -> None:
        """The call's time is up: its waiter fails with :class:`_Expired` (the connection is
        then closed, as for any failed call)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(_Expired())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _ended(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            if self._parse(eof=True):
                return
        except (ValueError, OSError) as err:
            waiter.set_exception(err)
            return
        if self._reused and not self._got:
            waiter.set_exception(_Stale())
        else:
            waiter.set_exception(EOFError(f"connection closed mid-answer{f': {exc!r}' if exc else ''}"))

    def _parse(self, eof: bool) -> bool:
        """Hand the waiter the answer if the buffer holds all of it (or, at ``eof``, an answer
        framed by the connection's end); whether it did."""
        buf = self._buf
        while self._head is None:
            end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(buf) >= MAX_HEAD + 4:
                    raise ValueError("answer head too large")
                return False
            status, headers, keep = _parse_head(bytes(buf[:end]))
            del buf[:end + 4]
            if status >= 200:  # 1xx (we never ask for 100-continue): skip to the final answer
                self._head = (status, headers, keep)
        status, headers, keep = self._head
        if self._method == "HEAD" or status in (204, 304):
            body = b""
        elif "content-length" in headers:
            raw = headers["content-length"]
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):  # int() takes '+2', '0_2'
                raise ValueError(f"bad Content-Length {raw[:40]!r}")
            length = int(raw)
            if length > MAX_BODY:
                raise ValueError(f"answer of {length} bytes")
            if len(buf) < length:
                return False
            body = bytes(buf[:length])
            del buf[:length]
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            if self._chunks is None:
                self._chunks = _Chunked()
            got = self._chunks.take(buf)
            if got is None:
                return False
            body = got
        else:  # framed by the connection's end
            if len(buf) > MAX_BODY:
                raise ValueError("answer too large")
            if not eof:
                return False
            body, keep = bytes(buf), False
            buf.clear()
        assert self._waiter is not None
        self._waiter.set_result((Answer(status, headers, body), keep and not buf and not eof))
        return True


class _Stale(Exception):
    """A reused connection the node had closed: nothing of an answer came back."""


class _Expired(Exception):
    """The call's deadline passed before its answer came (raised to the caller as
    ``asyncio.TimeoutError``; not an OSError, so it is not read as a connection failure)."""


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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            try:
                data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
            except UnicodeEncodeError:
                raise InternalHttpError(f"a request to {address!r} that is not latin-1") from None
            conn = self._checkout(address)
            if conn is not None:
                # A timer on the call's own answer (not asyncio.timeout, which costs a task
                # cancellation's bookkeeping per call): the common case, a kept connection.
                timer = loop.call_at(deadline, conn.expire)
                try:
                    return await self._exchange(address, conn, method, data, reused=True)
                except _Stale:
                    pass
                except _Expired:
                    raise asyncio.TimeoutError() from None
                finally:
                    timer.cancel()
            async with asyncio.timeout_at(deadline):
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
            answer, keep = await conn.send(data, method, reused)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, (_Stale, _Expired)):
                raise
            if isinstance(exc, (OSError, EOFError, ValueError)):
                raise InternalHttpError(f"{address}: {exc!r}") from None
            raise
        finally:
            conn.done()
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
        _, conn = await open_connection(address, _Conn, self.tls)
        self.opened += 1
        return conn

    async def close(self) -> None:
        """Close every idle connection (calls in flight close theirs when they end)."""
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """(status, headers with lower-case names, whether the connection may carry another
    call) of an answer's head (without its blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ValueError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(code), headers, version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"


class _Chunked:
    """A chunked body read from the front of a buffer as it arrives: each whole chunk is
    taken out of the buffer, so bytes are looked at once however many pieces they come in.
    Bounded: a chunk-size line of at most ``MAX_CHUNK_LINE`` bytes, a body of at most
    ``MAX_BODY``, trailers of at most ``MAX_HEAD``; beyond that (or on a malformed line)
    ValueError."""

    __slots__ = ("parts", "total", "trailer")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.total = 0
        self.trailer = -1  # bytes of the trailer section taken so far (-1: still in the chunks)

    def take(self, buf: bytearray) -> bytes | None:
        """The whole body once the buffer holds its end (which is taken out, the rest left);
        None while it is incomplete."""
        while self.trailer < 0:
            eol = buf.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
            if eol < 0:
                if len(buf) >= MAX_CHUNK_LINE + 2:
                    raise ValueError("chunk-size line too long")
                return None
            size = _chunk_size(bytes(buf[:eol]))
            if size == 0:
                del buf[:eol + 2]
                self.trailer = 0
                break
            if self.total + size > MAX_BODY:
                raise ValueError("answer too large")
            end = eol + 2 + size
            if len(buf) < end + 2:
                return None
            if buf[end:end + 2] != b"\r\n":
                raise ValueError("chunk data not followed by CRLF")
            self.parts.append(bytes(buf[eol + 2:end]))
            self.total += size
            del buf[:end + 2]
        while True:  # trailer lines, then the blank line
            room = MAX_HEAD - self.trailer
            eol = buf.find(b"\r\n", 0, room + 2)
            if eol < 0:
                if len(buf) >= room + 2:
                    raise ValueError("trailer section too large")
                return None
            del buf[:eol + 2]
            self.trailer += eol + 2
            if eol == 0:
                return b"".join(self.parts)


def _chunk_size(line: bytes) -> int:
    """The size of a chunk-size line (hex digits, then any extensions after ``;``)."""
    digits = line.split(b";", 1)[0].strip(b" \t")
    if not 0 < len(digits) <= 16 or digits.strip(b"0123456789abcdefABCDEF"):
        raise ValueError(f"bad chunk size {line[:40]!r}")
    return int(digits, 16)


P = TypeVar("P", bound=asyncio.Protocol)


async def open_connection(address: str, factory: Callable[[], P], tls: ssl.SSLContext | None
                          ) -> tuple[asyncio.Transport, P]:
    """A new connection to a node's ``host:port`` (TLS when ``tls`` is given), with
    ``TCP_NODELAY``; :class:`InternalHttpError` for an address that is not ``host:port`` or
    a node that cannot be reached."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535):
        raise InternalHttpError(f"{address!r} is not host:port")
    try:
        transport, conn = await asyncio.get_running_loop().create_connection(
            factory, host, int(port), ssl=tls, server_hostname=host if tls is not None else None)
    except (OSError, ValueError, OverflowError) as exc:  # ValueError: e.g. a host name IDNA refuses
        raise InternalHttpError(f"{address} unreachable: {exc!r}") from None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return transport, conn
