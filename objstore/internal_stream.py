"""Streamed internal GETs (a blob's bytes from a storage node) over raw keep-alive connections.

A large read's body is received straight into memory the stream owns: the connection is an
``asyncio.BufferedProtocol``, so the event loop's socket read (``recv_into``) fills a block
of the stream's, and the caller is handed views of the filled part. Through aiohttp's client
the same bytes were copied up to three times in user space before the caller saw them (the
loop's read buffer into bytes, the parser's body slice into bytes, the stream reader's
re-slicing into the caller's chunk size).

Invariants:
- A block is never written again once a view of it was handed out: each block is fresh
  memory, sized to at most the bytes the answer still has to bring, so no byte past the
  answer is read into it.
- Memory per stream is bounded: reading pauses while more than ``HIGH_WATER`` bytes were
  received and not yet taken by the caller, and resumes once the caller took half of
  them; with the block being filled, a stream holds at most about two blocks beyond that.
- A connection goes back to the pool only after its answer was read to the last byte and
  did not say ``Connection: close``; a stream closed early (the caller stopped, failed or
  was cancelled) closes its connection. A call on a reused connection that the node had
  closed meanwhile (no byte came back) is sent once more on a new connection (a GET is
  idempotent).
- ``stall`` bounds the time with nothing received, for the head and between body reads
  alike (as aiohttp's ``sock_read``); past it the read fails with ``asyncio.TimeoutError``.
  Time spent with reading paused (the caller lagging) does not count: the bound starts
  again when reading resumes.
- Only ``Content-Length`` framing (what the storage nodes send) or a body framed by the
  connection's end is read; a chunked answer fails with :class:`InternalHttpError`.
"""
from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import AsyncIterator, Mapping

from objstore.buffers import uninitialized
from objstore.internal_http import MAX_HEAD, CallObserver, InternalHttpError, _parse_head, open_connection

# The most one receive block holds (below the services' 4 MiB mmap threshold). Blocks of
# 256 KiB cost the gateway 60% more CPU per 64 MiB GET (0.051 against 0.031 CPU-s: smaller
# writes to the client's socket); 2 MiB saved nothing more (0.030).
BLOCK = 1024 * 1024
HANDOUT = BLOCK // 2  # a waiting caller is handed what arrived once this much is ready
HIGH_WATER = 1024 * 1024  # received, not yet taken: reading pauses above this
MAX_ERROR_BODY = 1024 * 1024  # an error answer read whole (its JSON error) at most


class _Stale(Exception):
    """A reused connection the node had closed: nothing of an answer came back."""


class _StreamConn(asyncio.BufferedProtocol):
    """One connection. Head phase: bytes land in a small head buffer until the blank line;
    body phase: in fresh blocks handed out as views; idle: any byte is a protocol error."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.length: int | None = None  # body bytes the answer brings (None: until the end)
        self.got_any = False
        self.last_data = 0.0
        self._head = bytearray(MAX_HEAD + 4)
        self._head_len = 0
        self._phase = "idle"  # "head", "body", "idle"
        self._remaining = 0  # body bytes still to come (length framing)
        self._block: bytearray | None = None
        self._view: memoryview | None = None
        self._fill = 0  # bytes of the block received
        self._taken = 0  # bytes of the block handed out
        self._ready: collections.deque[memoryview] = collections.deque()
        self._ready_bytes = 0
        self._paused = False
        self._complete = False  # every body byte received
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._scratch = bytearray(256)

    # --- asyncio.BufferedProtocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._phase == "body":
            if self._block is None:
                size = min(BLOCK, self._remaining) if self.length is not None else BLOCK
                self._block = uninitialized(size)  # recv_into writes every byte handed out
                self._view = memoryview(self._block)
                self._fill = self._taken = 0
            return self._view[self._fill:]  # type: ignore[index]
        if self._phase == "head":
            return memoryview(self._head)[self._head_len:]
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        self.got_any = True
        self.last_data = time.monotonic()
        if self._phase == "body":
            self._body_received(nbytes)
        elif self._phase == "head":
            self._head_len += nbytes
            try:
                self._parse_head()
            except ValueError as exc:
                self._fail(InternalHttpError(str(exc)))
        else:  # bytes no answer accounts for: the connection cannot carry another call
            self._fail(InternalHttpError("bytes past the answer"))

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    # --- parsing -----------------------------------------------------------------------------

    def _parse_head(self) -> None:
        while self._phase == "head":
            end = self._head.find(b"\r\n\r\n", 0, self._head_len)
            if end < 0:
                if self._head_len >= MAX_HEAD + 4:
                    raise ValueError("answer head too large")
                return
            status, headers, keep = _parse_head(bytes(self._head[:end]))
            rest = bytes(self._head[end + 4:self._head_len])
            self._head_len = 0
            if status < 200:  # an interim answer: skip to the final one
                self._head[:len(rest)] = rest
                self._head_len = len(rest)
                continue
            if "chunked" in headers.get("transfer-encoding", "").lower():
                raise ValueError("chunked answers are not read as streams")
            raw = headers.get("content-length")
            if raw is not None:
                if not (raw.isascii() and raw.isdigit() and len(raw) <= 19):
                    raise ValueError(f"bad Content-Length {raw[:40]!r}")
                self.length = self._remaining = int(raw)
            else:
                self.length, keep = None, False
            self.status, self.headers, self.keep_alive = status, headers, keep
            self._phase = "body"
            if self.length is not None and len(rest) > self.length:  # an empty answer's too
                raise ValueError("bytes past the answer")
            if self.length == 0:
                self._finish()
            elif rest:
                self._push(memoryview(rest))
                if self.length is not None:
                    self._remaining -= len(rest)
                    if self._remaining == 0:
                        self._finish()
            self._wake()

    def _body_received(self, n: int) -> None:
        self._fill += n
        if self.length is not None:
            self._remaining -= n
        full = self._fill == len(self._block)  # type: ignore[arg-type]
        if full or self._remaining == 0 and self.length is not None or \
                (self._waiter is not None and self._fill - self._taken >= HANDOUT):
            self._hand_out()
        if self.length is not None and self._remaining == 0:
            self._finish()
        if self._ready_bytes > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        if self._ready:
            self._wake()

    def _hand_out(self) -> None:
        if self._fill > self._taken:
            self._push(self._view[self._taken:self._fill])  # type: ignore[index]
            self._taken = self._fill
        if self._block is not None and self._fill == len(self._block):
            self._block = self._view = None

    def _push(self, view: memoryview) -> None:
        self._ready.append(view)
        self._ready_bytes += len(view)

    def _finish(self) -> None:
        self._complete = True
        self._phase = "idle"
        self._block = self._view = None

    def _ended(self, exc: Exception | None) -> None:
        self.closed = True
        if self._phase == "body" and self.length is None:  # framed by the connection's end
            self._hand_out()
            self._finish()
            self.keep_alive = False
        elif not self._complete:
            if self._phase == "head" and not self.got_any:
                self._fail(_Stale())
            else:
                self._fail(EOFError(f"connection closed mid-answer{f': {exc!r}' if exc else ''}"))
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self.close()
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # --- the caller's side -------------------------------------------------------------------

    def start(self, request: bytes) -> None:
        assert self.transport is not None
        self.status, self.headers, self.length, self.keep_alive = 0, {}, None, False
        self.got_any = False
        self.last_data = time.monotonic()
        self._phase, self._head_len, self._complete, self._error = "head", 0, False, None
        self._ready.clear()
        self._ready_bytes = 0
        self.transport.write(request)

    async def wait(self, stall: float, head: bool = False) -> None:
        """Until the answer's head arrived (``head``), else until a piece of the body is
        ready or the body ended; raises what broke the answer, or asyncio.TimeoutError
        after ``stall`` seconds with nothing received."""
        loop = asyncio.get_running_loop()
        while self._error is None:
            if head:
                if self._phase != "head":
                    break
            elif self._ready or self._complete:
                break
            elif self._phase == "body" and self._fill - self._taken >= HANDOUT:
                self._hand_out()  # enough arrived for a piece worth a write of its own
                break
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(max(self.last_data + stall - time.monotonic(), 0.0), self._stall_check,
                                    waiter, stall)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._error is not None and (head or not self._ready):
            raise self._error

    def _stall_check(self, waiter: asyncio.Future[None], stall: float) -> None:
        if not waiter.done() and time.monotonic() - self.last_data >= stall * 0.999:
            waiter.set_exception(asyncio.TimeoutError())
        elif not waiter.done():  # bytes came meanwhile: look again when the bound is next due
            waiter.set_result(None)

    def take(self) -> memoryview | None:
        """The next received piece of the body, if any is ready."""
        if not self._ready:
            return None
        piece = self._ready.popleft()
        self._ready_bytes -= len(piece)
        if self._paused and self._ready_bytes <= HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.last_data = time.monotonic()  # the stall bound counts from here, not from before the pause
            self.transport.resume_reading()
        return piece

    @property
    def complete(self) -> bool:
        return self._complete and not self._ready

    def reusable(self) -> bool:
        return (self.complete and self.keep_alive and not self.closed and self._error is None
                and self.transport is not None and not self.transport.is_closing())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class StreamAnswer:
    """An answer whose head arrived: ``status``, ``headers`` (lower-case names),
    ``content_length`` (None when framed by the connection's end)."""

    def __init__(self, conn: _StreamConn, stall: float) -> None:
        self._conn = conn
        self._stall = stall
        self.status = conn.status
        self.headers = conn.headers
        self.content_length = conn.length

    async def chunks(self) -> AsyncIterator[memoryview]:
        """The body as views of the memory it was received into; raises EOFError,
        InternalHttpError or asyncio.TimeoutError when it breaks off."""
        conn = self._conn
        while True:
            piece = conn.take()
            if piece is not None:
                yield piece
                continue
            if conn.complete:
                return
            await conn.wait(self._stall)

    async def read(self, limit: int = MAX_ERROR_BODY) -> bytes:
        """The whole body (an error answer's), at most ``limit`` bytes."""
        parts, size = [], 0
        async for piece in self.chunks():
            size += len(piece)
            if size > limit:
                raise InternalHttpError(f"answer of more than {limit} bytes")
            parts.append(piece)
        return b"".join(parts)


class StreamPool:
    """Kept-alive connections for streamed GETs, per node; ``tls``: a client context to
    speak HTTPS (verified by it), None for plain HTTP. ``observer`` is told of each call
    (as :class:`objstore.internal_http.HttpPool`'s), its end being the answer's head."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, max_idle: int = 16, idle_seconds: float = 20.0,
                 observer: CallObserver | None = None) -> None:
        self.tls = tls
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self.observer = observer
        self._idle: dict[str, list[_StreamConn]] = {}
        self.opened = 0

    def get(self, address: str, path_qs: str, headers: Mapping[str, str], *, connect_timeout: float,
            stall: float) -> "_Opened":
        """``async with pool.get(...) as answer``: a GET whose answer's head arrived; the
        connection is kept for the next call only if the body was read to its end."""
        return _Opened(self, address, path_qs, headers, connect_timeout, stall)

    async def _start(self, address: str, path_qs: str, headers: Mapping[str, str], connect_timeout: float,
                     stall: float) -> _StreamConn:
        hdrs = dict(headers)
        token = self.observer.start("GET", path_qs, hdrs) if self.observer is not None else None
        try:
            lines = [f"GET {path_qs} HTTP/1.1", f"Host: {address}"]
            lines += [f"{k}: {v}" for k, v in hdrs.items() if k.lower() not in ("host", "content-length", "connection")]
            try:
                request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            except UnicodeEncodeError:
                raise InternalHttpError(f"a request to {address!r} that is not latin-1") from None
            conn = self._checkout(address)
            if conn is not None:
                try:
                    return await self._exchange(conn, request, stall)
                except _Stale:
                    pass
            async with asyncio.timeout(connect_timeout):
                conn = await self._open(address)
            try:
                return await self._exchange(conn, request, stall)
            except _Stale:
                raise InternalHttpError(f"{address} closed the connection without an answer") from None
        finally:
            if self.observer is not None:
                self.observer.end("GET", path_qs, token)

    @staticmethod
    async def _exchange(conn: _StreamConn, request: bytes, stall: float) -> _StreamConn:
        try:
            conn.start(request)
            await conn.wait(stall, head=True)
            return conn
        except BaseException as exc:
            conn.close()
            if isinstance(exc, (OSError, EOFError)) and not isinstance(exc, (InternalHttpError, TimeoutError)):
                raise InternalHttpError(repr(exc)) from None
            raise

    def _checkout(self, address: str) -> _StreamConn | None:
        idle = self._idle.get(address)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since < self.idle_seconds and conn.reusable():
                return conn
            conn.close()
        return None

    def _checkin(self, address: str, conn: _StreamConn) -> None:
        idle = self._idle.setdefault(address, [])
        if not conn.reusable() or len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _open(self, address: str) -> _StreamConn:
        _, conn = await open_connection(address, _StreamConn, self.tls)
        self.opened += 1
        return conn

    async def close(self) -> None:
        """Close every idle connection (streams in flight close theirs when they end)."""
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


class _Opened:
    def __init__(self, pool: StreamPool, address: str, path_qs: str, headers: Mapping[str, str],
                 connect_timeout: float, stall: float) -> None:
        self._args = (address, path_qs, headers, connect_timeout, stall)
        self._pool = pool
        self._conn: _StreamConn | None = None

    async def __aenter__(self) -> StreamAnswer:
        self._conn = await self._pool._start(*self._args)
        return StreamAnswer(self._conn, self._args[4])

    async def __aexit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._checkin(self._args[0], conn)
