"""The metadata node's hot calls (metadata.hot_routes) on the lean front: a client's
commands, object and bucket lookups and their errors are served without aiohttp, counted
under their route names; another call hands the connection to aiohttp, which serves it."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp import web

from metadata import hot_routes
from metadata.api.client import MetadataClient
from metadata.app import create_app
from objstore import internal_auth
from objstore.config import MetadataConfig
from objstore.errors import NoSuchKey
from objstore.internal_http import HttpPool
from objstore.types import ObjectVersion

SECRET = "test-secret"


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[web.Application, str]]:
    app = create_app(MetadataConfig(node_id="m1", data_dir=str(tmp_path / "m1"), secret=SECRET))
    runner = web.AppRunner(app)
    await runner.setup()
    site = hot_routes.site(runner, "127.0.0.1", 0)
    assert type(site) is not web.TCPSite
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield app, f"127.0.0.1:{port}"
    await runner.cleanup()


def _count(app: web.Application, op: str, status: int) -> float:
    text = app[hot_routes.ROUTES].calls.metrics.render()[0].decode()
    line = f'objstore_requests_total{{op="{op}",role="metadata",status="{status}"}} '
    return next((float(x.split(" ")[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)


async def test_commands_and_lookups_are_served_by_the_lean_front(node) -> None:
    app, address = node
    async with MetadataClient([address], SECRET, client_id="c1", deadline=10) as client:
        await client.create_bucket("b", "alice", "replica:3", time.time())
        v = ObjectVersion("b", "k", "v1", 3, "e" * 32, time.time(), placement=("n1",), ring_epoch=1, owner="alice")
        await client.put_object(v)
        assert (await client.get_object("b", "k")).etag == "e" * 32
        assert (await client.get_bucket("b")).owner == "alice"
        with pytest.raises(NoSuchKey):
            await client.get_object("b", "missing")
    assert _count(app, "get_object", 200) == 1 and _count(app, "get_object", 404) == 1
    assert _count(app, "get_bucket", 200) >= 1 and _count(app, "command", 200) + _count(app, "commands", 200) >= 2
    assert len(app[hot_routes.ROUTES].connections) == 0  # the client closed its connections


async def test_listings_are_served_by_the_lean_front(node) -> None:
    """A listing page (rows form, the older dict form, a local read, a versions page) is
    answered on the lean front and keeps the connection there."""
    app, address = node
    async with MetadataClient([address], SECRET, client_id="c1", deadline=10) as client:
        await client.create_bucket("b", "alice", "replica:3", time.time())
        for i in range(3):
            await client.put_object(ObjectVersion("b", f"k{i}", f"v{i}", 3, "e" * 32, time.time(), placement=("n1",),
                                                  ring_epoch=1, owner="alice"))
        page = await client.list_objects("b", max_keys=2)
        assert [v.key for v in page.contents] == ["k0", "k1"] and page.is_truncated and page.next_marker == "k1"
        assert page.contents[0].placement == ("n1",) and page.contents[0].owner == "alice"
        local, read = await client.list_objects_local("b", start_after="k1")
        assert [v.key for v in local.contents] == ["k2"] and read.node_id == "m1"
        older = await client._call("GET", "/v1/list", {"bucket": "b"})
        assert [e["key"] for e in older["contents"]] == ["k0", "k1", "k2"]
        assert len((await client.list_object_versions("b")).versions) == 3
        assert len(app[hot_routes.ROUTES].connections) == 1  # none handed to aiohttp
    assert _count(app, "list_objects", 200) == 3 and _count(app, "list_object_versions", 200) == 1


async def test_another_call_hands_the_connection_to_aiohttp(node) -> None:
    app, address = node
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for path in ("/v1/object?bucket=b&key=k", "/v1/status", "/v1/object?bucket=b&key=k"):
            signed = internal_auth.headers(SECRET, "GET", path, target=address)
            writer.write((f"GET {path} HTTP/1.1\r\nHost: {address}\r\n"
                          + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n").encode())
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
            length = int(next(x.split(":")[1] for x in head.split("\r\n") if x.lower().startswith("content-length")))
            body = json.loads(await reader.readexactly(length))
            if path == "/v1/status":
                assert body["node_id"] == "m1"
                assert len(app[hot_routes.ROUTES].connections) == 0  # aiohttp's from now on
            else:
                assert head.startswith("HTTP/1.1 404") and body["code"] == "NoSuchBucket"
    finally:
        writer.close()
    assert _count(app, "get_object", 404) == 2 and _count(app, "status", 200) == 1


async def test_a_call_not_signed_is_refused_on_the_lean_front(node) -> None:
    app, address = node
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET /v1/object?bucket=b&key=k HTTP/1.1\r\nHost: {address}\r\n\r\n".encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
        assert head.startswith("HTTP/1.1 403")
        assert len(app[hot_routes.ROUTES].connections) == 1
    finally:
        writer.close()


async def test_the_cluster_map_long_poll_keeps_its_connection_on_the_lean_front(node) -> None:
    app, address = node
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        for path in ("/v1/cluster?wait_epoch=0&timeout=0.1", "/v1/object?bucket=b&key=k"):
            signed = internal_auth.headers(SECRET, "GET", path, target=address)
            writer.write((f"GET {path} HTTP/1.1\r\nHost: {address}\r\n"
                          + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n").encode())
            head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
            length = int(next(x.split(":")[1] for x in head.split("\r\n") if x.lower().startswith("content-length")))
            await reader.readexactly(length)
            assert len(app[hot_routes.ROUTES].connections) == 1
    finally:
        writer.close()
    assert _count(app, "get_cluster", 200) == 1 and _count(app, "get_object", 404) == 1


async def test_a_pooled_client_keeps_its_connections_on_the_lean_front(node) -> None:
    """A client with a keep-alive pool (as a gateway has) sends the calls the front does not
    serve through its aiohttp session: its pooled connections, and the commands they carry
    after a listing, stay with the lean front."""
    app, address = node
    pool = HttpPool()
    try:
        async with MetadataClient([address], SECRET, client_id="c1", deadline=10, pool=pool) as client:
            await client.create_bucket("b", "alice", "replica:3", time.time())
            assert len(app[hot_routes.ROUTES].connections) == 1
            assert [b.name for b in await client.list_buckets()] == ["b"]  # not a hot call
            assert (await client.status())["node_id"] == "m1"
            v = ObjectVersion("b", "k", "v1", 3, "e" * 32, time.time(), placement=("n1",), ring_epoch=1, owner="alice")
            await client.put_object(v)
            assert (await client.get_object("b", "k")).etag == "e" * 32
            assert len(app[hot_routes.ROUTES].connections) == 1  # the pool's one connection
            assert pool.opened == 1
    finally:
        await pool.close()
    assert _count(app, "command", 200) + _count(app, "commands", 200) == 2
    assert _count(app, "get_object", 200) == 1 and _count(app, "list_buckets", 200) == 1


async def test_coalesced_lookups_are_served_by_the_lean_front(node) -> None:
    """Concurrent lookups of a pooled client go in one ``POST /v1/objects``, which the lean
    front serves (counted as ``get_objects``), each with its own answer or error."""
    app, address = node
    pool = HttpPool()
    try:
        async with MetadataClient([address], SECRET, client_id="c1", deadline=10, pool=pool) as client:
            await client.create_bucket("b", "alice", "replica:3", time.time())
            v = ObjectVersion("b", "k", "v1", 3, "e" * 32, time.time(), placement=("n1",), ring_epoch=1, owner="alice")
            await client.put_object(v)
            got = await asyncio.gather(*(client.get_object("b", k) for k in ("k", "missing", "k")),
                                       return_exceptions=True)
            assert got[0].etag == got[2].etag == "e" * 32 and isinstance(got[1], NoSuchKey)
            assert len(app[hot_routes.ROUTES].connections) == 1 and pool.opened == 1
    finally:
        await pool.close()
    assert _count(app, "get_objects", 200) == 1 and _count(app, "get_object", 200) == 0
