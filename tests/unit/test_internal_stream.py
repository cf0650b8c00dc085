"""Streamed internal GETs (objstore.internal_stream) against a real aiohttp server on
127.0.0.1: the body received into the stream's own blocks and handed out as views, the
connection kept only after a whole answer, a stall or a cut answer failing the read,
reading paused while the caller lags."""
from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
import uvloop
from aiohttp import web

from objstore import internal_auth
from objstore.internal_http import InternalHttpError
from objstore.internal_stream import BLOCK, HIGH_WATER, StreamPool

BIG = os.urandom(5 * 1024 * 1024 + 123)


async def big(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"X-Objstore-Size": str(len(BIG))})
    resp.content_length = len(BIG)
    await resp.prepare(request)
    view = memoryview(BIG)
    for at in range(0, len(BIG), 1024 * 1024):
        await resp.write(view[at:at + 1024 * 1024])
    await resp.write_eof()
    return resp


async def cut(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.content_length = 1000000
    await resp.prepare(request)
    await resp.write(b"x" * 300000)
    request.transport.close()
    return resp


async def stall(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.content_length = 1000
    await resp.prepare(request)
    await resp.write(b"x" * 10)
    await asyncio.sleep(2)
    return resp


async def missing(request: web.Request) -> web.Response:
    return web.json_response({"code": "NoSuchKey"}, status=404)


async def empty(request: web.Request) -> web.Response:
    return web.Response(body=b"")


async def signed(request: web.Request) -> web.Response:
    ok = internal_auth.verify_headers("s3cr3t", request.method, request.raw_path, request.headers,
                                      target=request.host)
    return web.Response(status=200 if ok else 403, body=b"ok")


@pytest.fixture
async def server():
    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/cut", cut)
    app.router.add_get("/stall", stall)
    app.router.add_get("/missing", missing)
    app.router.add_get("/empty", empty)
    app.router.add_get("/signed", signed)
    # A short shutdown: teardown cancels a /stall handler its client gave up on instead of
    # waiting out its sleep.
    runner = web.AppRunner(app, keepalive_timeout=0.5, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


async def _get(pool: StreamPool, address: str, path: str, stall: float = 5.0) -> tuple[int, bytes, int]:
    async with pool.get(address, path, {}, connect_timeout=3, stall=stall) as answer:
        parts = [piece async for piece in answer.chunks()]
        assert all(isinstance(p, memoryview) and len(p) <= BLOCK for p in parts)
        return answer.status, b"".join(parts), len(parts)


async def test_a_body_arrives_whole_as_views_and_the_connection_is_reused(server):
    pool = StreamPool()
    for _ in range(3):
        status, body, _pieces = await _get(pool, server, "/big")
        assert status == 200 and hashlib.md5(body).digest() == hashlib.md5(BIG).digest()
    assert pool.opened == 1
    await pool.close()


def test_the_same_under_uvloop():
    async def main() -> None:
        app = web.Application()
        app.router.add_get("/big", big)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        pool = StreamPool()
        try:
            for _ in range(2):
                status, body, _pieces = await _get(pool, address, "/big")
                assert status == 200 and body == BIG
            assert pool.opened == 1
        finally:
            await pool.close()
            await runner.cleanup()

    uvloop.run(main())


async def test_a_stream_left_early_closes_its_connection(server):
    pool = StreamPool()
    async with pool.get(server, "/big", {}, connect_timeout=3, stall=5) as answer:
        async for _piece in answer.chunks():
            break
    status, body, _ = await _get(pool, server, "/big")
    assert status == 200 and body == BIG
    assert pool.opened == 2
    await pool.close()


async def test_an_answer_cut_short_fails_the_read(server):
    pool = StreamPool()
    with pytest.raises(EOFError):
        await _get(pool, server, "/cut")
    await pool.close()


async def test_a_stalled_answer_fails_after_the_stall_bound(server):
    pool = StreamPool()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(asyncio.TimeoutError):
        await _get(pool, server, "/stall", stall=0.3)
    assert loop.time() - t0 < 2
    await pool.close()


async def test_error_and_empty_answers_are_read_whole(server):
    pool = StreamPool()
    async with pool.get(server, "/missing", {}, connect_timeout=3, stall=5) as answer:
        assert answer.status == 404 and b"NoSuchKey" in await answer.read()
    status, body, pieces = await _get(pool, server, "/empty")
    assert status == 200 and body == b"" and pieces == 0
    assert pool.opened == 1
    await pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced(server):
    pool = StreamPool()
    assert (await _get(pool, server, "/empty"))[0] == 200
    await asyncio.sleep(1.2)  # past the server's keep-alive: it closed the connection
    assert (await _get(pool, server, "/big"))[1] == BIG
    assert pool.opened == 2
    await pool.close()


async def test_signed_headers_are_sent_as_given(server):
    pool = StreamPool()
    path = "/signed"
    headers = internal_auth.headers("s3cr3t", "GET", path, target=server)
    async with pool.get(server, path, headers, connect_timeout=3, stall=5) as answer:
        assert answer.status == 200 and await answer.read() == b"ok"
    await pool.close()


async def test_reading_pauses_while_the_caller_lags(server):
    pool = StreamPool()
    async with pool.get(server, "/big", {}, connect_timeout=3, stall=5) as answer:
        conn = answer._conn
        got, most = 0, 0
        async for piece in answer.chunks():
            got += len(piece)
            await asyncio.sleep(0.05)  # a slow client: the node's bytes pile up
            most = max(most, conn._ready_bytes)
        assert got == len(BIG)
        assert HIGH_WATER + BLOCK <= 3 * 1024 * 1024
        assert most <= 3 * 1024 * 1024  # of a 5 MiB body: reading paused


async def test_an_unreachable_node_is_an_internal_http_error():
    pool = StreamPool()
    with pytest.raises(InternalHttpError):
        async with pool.get("127.0.0.1:1", "/x", {}, connect_timeout=3, stall=5):
            pass


class _FakeTransport:
    """Enough of a transport for a _StreamConn fed by hand."""

    def __init__(self) -> None:
        self.paused = False
        self.closed = False

    def write(self, data: bytes) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _feed(conn, data: bytes) -> None:
    view = memoryview(data)
    while view:
        buf = conn.get_buffer(len(view))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        conn.buffer_updated(n)
        view = view[n:]


async def test_time_spent_paused_for_a_slow_caller_is_not_a_stall():
    from objstore.internal_stream import _StreamConn

    conn = _StreamConn()
    transport = _FakeTransport()
    conn.connection_made(transport)
    conn.start(b"GET /x HTTP/1.1\r\n\r\n")
    size = 4 * BLOCK
    _feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    await conn.wait(0.3, head=True)
    sent = 3 * BLOCK
    _feed(conn, b"x" * sent)  # the node outpaces the caller: reading pauses
    assert transport.paused
    await asyncio.sleep(0.5)  # the caller's own client is slow, longer than the stall bound
    got = 0
    while (piece := conn.take()) is not None:
        got += len(piece)
    assert not transport.paused  # reading resumed; the node answers at once
    asyncio.get_running_loop().call_later(0.05, _feed, conn, b"y" * (size - sent))
    await conn.wait(0.3)  # the node is 50 ms away, well within the bound: no timeout
    while (piece := conn.take()) is not None:
        got += len(piece)
    assert got == size


async def test_bytes_after_an_empty_answer_make_the_connection_unusable():
    from objstore.internal_stream import _StreamConn

    conn = _StreamConn()
    transport = _FakeTransport()
    conn.connection_made(transport)
    conn.start(b"GET /x HTTP/1.1\r\n\r\n")
    _feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n")  # one read
    with pytest.raises(InternalHttpError):
        await conn.wait(1.0, head=True)
    assert not conn.reusable() and transport.closed
