"""The pooled HTTP/1.1 client of the hot internal calls (objstore.internal_http), against a
real aiohttp server on 127.0.0.1: connections reused, stale ones replaced, every framing
read, failures closing their connection."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from objstore import internal_auth
from objstore.internal_http import HttpPool, InternalHttpError


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"method": request.method, "path": request.path_qs, "len": len(body),
                              "host": request.host, "x": request.headers.get("X-Thing", "")})


async def chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for part in (b"ab", b"c" * 5000, b"d"):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def closing(request: web.Request) -> web.Response:
    return web.Response(body=b"bye", headers={"Connection": "close"})


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(body=b"late")


async def signed(request: web.Request) -> web.Response:
    ok = internal_auth.verify_headers("s3cr3t", request.method, request.raw_path, request.headers,
                                      target=request.host)
    body = await request.read()
    ok = ok and internal_auth.body_matches(request.headers.get(internal_auth.BODY_HEADER, ""),
                                           request.content_length, body)
    return web.Response(status=200 if ok else 403)


@pytest.fixture
async def server():
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/closing", closing)
    app.router.add_get("/slow", slow)
    app.router.add_put("/signed", signed)
    # A short shutdown: teardown cancels a /slow handler its client gave up on instead of
    # waiting out its sleep.
    runner = web.AppRunner(app, keepalive_timeout=0.5, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    await runner.cleanup()


async def test_calls_reuse_one_connection_and_carry_headers_and_body(server):
    pool = HttpPool()
    for i in range(20):
        a = await pool.request("POST", server, f"/echo?i={i}", {"X-Thing": "t"}, b"x" * i, timeout=5)
        assert a.status == 200 and json.loads(a.body) == {"method": "POST", "path": f"/echo?i={i}", "len": i,
                                                         "host": server, "x": "t"}
    assert pool.opened == 1
    await pool.close()


async def test_a_connection_the_server_closed_while_idle_is_replaced(server):
    pool = HttpPool()
    assert (await pool.request("GET", server, "/echo", {}, timeout=5)).status == 200
    await asyncio.sleep(1.2)  # past the server's keep-alive: it closed the connection
    assert (await pool.request("GET", server, "/echo", {}, timeout=5)).status == 200
    assert pool.opened == 2
    await pool.close()


async def test_chunked_and_connection_close_answers(server):
    pool = HttpPool()
    a = await pool.request("GET", server, "/chunked", {}, timeout=5)
    assert a.body == b"ab" + b"c" * 5000 + b"d"
    b = await pool.request("GET", server, "/closing", {}, timeout=5)
    assert b.body == b"bye"
    await pool.request("GET", server, "/echo", {}, timeout=5)
    assert pool.opened == 2  # the chunked answer's connection was reused, the closed one not
    await pool.close()


async def test_a_timeout_closes_its_connection_and_unreachable_nodes_fail_cleanly(server):
    pool = HttpPool()
    with pytest.raises(asyncio.TimeoutError):
        await pool.request("GET", server, "/slow", {}, timeout=0.3)
    assert (await pool.request("GET", server, "/echo", {}, timeout=5)).status == 200
    assert pool.opened == 2
    with pytest.raises(InternalHttpError):
        await pool.request("GET", "127.0.0.1:1", "/echo", {}, timeout=5)
    await pool.close()


async def test_a_timeout_on_a_kept_connection_raises_timeout_and_closes_it(server):
    pool = HttpPool()
    assert (await pool.request("GET", server, "/echo", {}, timeout=5)).status == 200
    started = asyncio.get_running_loop().time()
    with pytest.raises(asyncio.TimeoutError):
        await pool.request("GET", server, "/slow", {}, timeout=0.3)  # on the kept connection
    assert asyncio.get_running_loop().time() - started < 2
    assert pool.opened == 1
    assert (await pool.request("GET", server, "/echo", {}, timeout=5)).status == 200
    assert pool.opened == 2  # the timed-out connection was not reused
    await pool.close()


async def test_signed_calls_verify_on_the_server(server):
    pool = HttpPool()
    body = b"{}"
    hdrs = internal_auth.headers("s3cr3t", "PUT", "/signed", body=body, target=server,
                                 extra={"X-Objstore-Bucket": "b", "Content-Length": "2"})
    assert (await pool.request("PUT", server, "/signed", hdrs, body, timeout=5)).status == 200
    forged = dict(hdrs, **{"X-Objstore-Bucket": "other"})
    assert (await pool.request("PUT", server, "/signed", forged, body, timeout=5)).status == 403
    await pool.close()


async def _raw_server(answer: bytes, *, close_after: bool = False, drip: bool = True):
    """A server that reads one request head and answers ``answer`` (one byte per write
    with ``drip``), then closes the connection with ``close_after``."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                for i in range(len(answer)) if drip else [None]:
                    writer.write(answer if i is None else answer[i:i + 1])
                    await writer.drain()
                    if drip:
                        await asyncio.sleep(0)
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, f"127.0.0.1:{srv.sockets[0].getsockname()[1]}"


async def test_an_answer_in_many_pieces_after_an_interim_one_is_read_whole():
    answer = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
              b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n")
    srv, address = await _raw_server(answer)
    pool = HttpPool()
    for _ in range(2):
        a = await pool.request("GET", address, "/x", {}, timeout=5)
        assert (a.status, a.body, a.headers["x-a"]) == (200, b"abcde", "b")
    assert pool.opened == 1  # reused after a complete answer
    await pool.close()
    srv.close()


async def test_an_http10_answer_framed_by_the_close_is_read_and_its_connection_not_reused():
    srv, address = await _raw_server(b"HTTP/1.0 200 OK\r\nX-A: b\r\n\r\nall of it", close_after=True)
    pool = HttpPool()
    for _ in range(2):
        assert (await pool.request("GET", address, "/x", {}, timeout=5)).body == b"all of it"
    assert pool.opened == 2
    await pool.close()
    srv.close()


async def test_a_connection_closed_mid_answer_fails_the_call():
    srv, address = await _raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", close_after=True)
    pool = HttpPool()
    with pytest.raises(InternalHttpError):
        await pool.request("GET", address, "/x", {}, timeout=5)
    await pool.close()
    srv.close()


@pytest.mark.parametrize("address", ["127.0.0.1:notaport", "127.0.0.1:70000", "127.0.0.1:", "127.0.0.1:\u00b2",
                                     "127.0.0.1:99999999999999999999", "bad\x00host:80", "sn\u00f6\u2603:80"])
async def test_a_malformed_address_fails_as_an_internal_http_error(address):
    pool = HttpPool()
    with pytest.raises(InternalHttpError):
        await pool.request("GET", address, "/x", {}, timeout=5)
    assert pool.opened == 0
    await pool.close()


async def _endless_server(answer: bytes, filler: bytes):
    """A server that answers ``answer`` and then ``filler`` for ever (1 MiB at most), never
    ending the line; the event is set when the client closes the connection."""
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            for _ in range(1024):
                writer.write(filler * (1024 // len(filler)))
                await writer.drain()
                await asyncio.sleep(0)
            await reader.read()  # until the client closes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        closed.set()
        writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, f"127.0.0.1:{srv.sockets[0].getsockname()[1]}", closed


@pytest.mark.parametrize("answer,filler", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"0"),  # a chunk-size line without end
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;", b"x"),  # its extensions without end
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n", b"T: x\r\n"),  # trailers without end
    (b"HTTP/1.1 200 OK\r\nX-Long: ", b"y"),  # a head without end
])
async def test_an_answer_line_or_section_without_end_fails_the_call_and_closes_its_connection(answer, filler):
    srv, address, closed = await _endless_server(answer, filler)
    pool = HttpPool()
    with pytest.raises(InternalHttpError):
        await pool.request("GET", address, "/x", {}, timeout=10)
    await asyncio.wait_for(closed.wait(), 5)
    await pool.close()
    srv.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"y" * 70000 + b"\r\nContent-Length: 0\r\n\r\n",  # a head too large, whole
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nab\r\n0\r\n\r\n",  # a negative chunk size
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n",  # not hex digits alone
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",  # a chunk longer than said
    b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab",  # int() takes these; HTTP does not
    b"HTTP/1.1 200 OK\r\nContent-Length: 0_2\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab",
])
async def test_a_malformed_or_oversized_answer_fails_the_call(answer):
    srv, address = await _raw_server(answer, close_after=False, drip=False)
    pool = HttpPool()
    with pytest.raises(InternalHttpError):
        await pool.request("GET", address, "/x", {}, timeout=5)
    assert pool.opened == 1 and not pool._idle.get(address)
    await pool.close()
    srv.close()


async def test_bytes_sent_to_an_idle_connection_close_it_instead_of_filling_its_buffer():
    sent = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.1)
        try:
            for _ in range(64):  # 4 MiB nobody asked for
                writer.write(b"z" * 65536)
                await writer.drain()
        except ConnectionError:
            pass
        sent.set()
        writer.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    address = f"127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    pool = HttpPool()
    assert (await pool.request("GET", address, "/x", {}, timeout=5)).body == b"ok"
    [conn] = pool._idle[address]
    await asyncio.wait_for(sent.wait(), 10)
    assert conn.closed and len(conn._buf) == 0
    await pool.close()
    srv.close()
