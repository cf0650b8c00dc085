"""Kept-alive aiohttp connections with a ``sock_read`` timeout (objstore.client_connector),
against a real aiohttp server on 127.0.0.1: a body read slower than it arrives (reading
pauses, then resumes and finishes the response) leaves no read timer on the idle connection,
so a call that reuses it after more than ``sock_read`` succeeds; a peer that really stalls
still times out."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from objstore.client_connector import keepalive_connector

BODY = b"x" * 1_000_000  # well past the response buffer's high-water mark (128 KiB)
SOCK_READ = 0.2


async def blob(request: web.Request) -> web.Response:
    return web.Response(body=BODY)


async def stall(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Length": "10"})
    await resp.prepare(request)
    await resp.write(b"12345")
    await asyncio.sleep(1)  # far past sock_read: the client gives up first
    await resp.write(b"67890")
    return resp


@pytest.fixture
async def base_url():
    app = web.Application()
    app.router.add_get("/blob", blob)
    app.router.add_get("/stall", stall)
    runner = web.AppRunner(app, shutdown_timeout=0.1)  # teardown cancels a /stall the client gave up on
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_slowly_read_body_leaves_no_read_timer_on_the_kept_connection(base_url: str) -> None:
    reused = 0

    async def on_reuse(*_: object) -> None:
        nonlocal reused
        reused += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_reuseconn.append(on_reuse)
    failures = []
    async with aiohttp.ClientSession(connector=keepalive_connector(), trace_configs=[trace],
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=SOCK_READ)) as session:
        for call in range(6):
            try:
                async with session.get(base_url + "/blob") as resp:
                    got = 0
                    async for chunk in resp.content.iter_chunked(256 * 1024):
                        got += len(chunk)
                        await asyncio.sleep(0.01)  # a slow reader: the buffer fills and reading pauses
                    assert got == len(BODY)
            except aiohttp.ClientError as exc:
                failures.append((call, repr(exc)))
            await asyncio.sleep(SOCK_READ * 1.5)  # idle longer than sock_read
    assert failures == []
    assert reused == 5  # every call after the first went over the kept connection


async def test_a_stalled_body_still_times_out(base_url: str) -> None:
    async with aiohttp.ClientSession(connector=keepalive_connector(),
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=SOCK_READ)) as session:
        async with session.get(base_url + "/stall") as resp:
            with pytest.raises(aiohttp.SocketTimeoutError):
                await resp.read()
