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
    runner = web.AppRunner(app, keepalive_timeout=0.5)
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
