"""The storage node's HTTP service, served on 127.0.0.1 in-process and driven by StorageClient."""
from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from objstore import internal_auth
from objstore.config import StorageConfig
from objstore.errors import (
    CorruptBlob,
    IncompleteBody,
    InvalidArgument,
    InvalidRange,
    MissingContentLength,
    NoSuchKey,
    ServiceUnavailable,
)
from objstore.internal_http import HttpPool
from objstore.internal_stream import StreamPool
from objstore.node.app import FRONT_ENV, STORE, create_app, site as node_site
from objstore.node.client import StorageClient
from objstore.node.store import StoreOptions
from tests.harness.disk import flip
from tests.harness.eventually import eventually_async
from tests.harness.serve import serve_on_loopback

SECRET = "test-secret"
OPTS = StoreOptions(small_threshold=64 * 1024, block_size=4096)


class Node:
    def __init__(self, app: web.Application, runner: web.AppRunner, address: str) -> None:
        self.app, self.runner, self.address = app, runner, address

    @property
    def store(self):
        return self.app[STORE]


@pytest.fixture(params=["hot-front", "aiohttp-front"])
async def node(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    """A node served as in production (hot calls by the lean front), and by aiohttp alone."""
    if request.param == "aiohttp-front":
        monkeypatch.setenv(FRONT_ENV, "aiohttp")
    cfg = StorageConfig(node_id="s1", data_dir=str(tmp_path / "s1"), secret=SECRET)
    app = create_app(cfg, OPTS)
    runner = web.AppRunner(app)
    await runner.setup()
    site = node_site(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Node(app, runner, f"127.0.0.1:{port}")
    await runner.cleanup()


@pytest.fixture(params=["session", "pool", "streams"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[StorageClient]:
    """The client over aiohttp's session alone, with the gateway's call pool, and with its
    call pool and streamed reads."""
    pool = HttpPool() if request.param != "session" else None
    streams = StreamPool() if request.param == "streams" else None
    async with aiohttp.ClientSession() as session:
        yield StorageClient(session, SECRET, pool=pool, streams=streams)
    if pool is not None:
        await pool.close()
    if streams is not None:
        await streams.close()


async def chunks(data: bytes, n: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), n):
        yield data[i : i + n]


async def get_all(client: StorageClient, address: str, vid: str, shard: int = 0, start=None, end=None) -> tuple:
    async with client.get_blob(address, vid, shard, start, end) as blob:
        return blob.status, blob.size, await blob.read()


@pytest.mark.parametrize("size", [0, 1, 5000, 64 * 1024, 200_000])
async def test_put_get_range_head_delete(node: Node, client: StorageClient, size: int) -> None:
    data = os.urandom(size)
    res = await client.put_blob(node.address, "0000018c2f3a1b2c-000042-gw1", 1, "bkt", "dir/ä key", "replica:3",
                                size, chunks(data))
    assert res["size"] == size and len(res["xxh64"]) == 16
    assert await get_all(client, node.address, "0000018c2f3a1b2c-000042-gw1", 1) == (200, size, data)
    if size > 10:
        status, total, part = await get_all(client, node.address, "0000018c2f3a1b2c-000042-gw1", 1, 3, size - 5)
        assert (status, total, part) == (206, size, data[3 : size - 4])
        status, _, tail = await get_all(client, node.address, "0000018c2f3a1b2c-000042-gw1", 1, size - 7, None)
        assert (status, tail) == (206, data[-7:])
        status, _, head = await get_all(client, node.address, "0000018c2f3a1b2c-000042-gw1", 1, None, 9)
        assert (status, head) == (206, data[:10])
    head = await client.head_blob(node.address, "0000018c2f3a1b2c-000042-gw1", 1)
    assert head == {"size": size, "bucket": "bkt", "key": "dir/ä key", "xxh64": res["xxh64"]}
    versions = await client.list_versions(node.address, "bkt", "dir/ä key")
    assert [(v["version_id"], v["shard"], v["size"]) for v in versions] == [("0000018c2f3a1b2c-000042-gw1", 1, size)]
    await client.delete_blob(node.address, "0000018c2f3a1b2c-000042-gw1", 1)
    await client.delete_blob(node.address, "0000018c2f3a1b2c-000042-gw1", 1)  # idempotent
    assert await client.head_blob(node.address, "0000018c2f3a1b2c-000042-gw1", 1) is None
    with pytest.raises(NoSuchKey):
        await get_all(client, node.address, "0000018c2f3a1b2c-000042-gw1", 1)
    assert await client.list_versions(node.address, "bkt", "dir/ä key") == []


async def test_unsatisfiable_range_and_bad_version_id(node: Node, client: StorageClient) -> None:
    await client.put_blob(node.address, "v1", 0, "b", "k", "replica:3", 10, chunks(b"0123456789"))
    with pytest.raises(InvalidRange):
        await get_all(client, node.address, "v1", 0, 10, 20)
    with pytest.raises(InvalidArgument):
        await client.put_blob(node.address, "bad..%2F..", 0, "b", "k", "replica:3", 1, chunks(b"x"))
    with pytest.raises(InvalidArgument):
        await client.put_blob(node.address, "v2", 0, "b", "k", "nonsense", 1, chunks(b"x"))


async def test_reput_replaces(node: Node, client: StorageClient) -> None:
    for data in (b"a" * 100, os.urandom(100_000), b"short"):
        await client.put_blob(node.address, "v1", 0, "b", "k", "replica:3", len(data), chunks(data))
        assert (await get_all(client, node.address, "v1"))[2] == data
    assert (await client.stats(node.address))["blob_count"] == 1


async def test_unauthenticated_request_refused_and_nothing_stored(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        url = f"http://{node.address}/blobs/v1/0"
        hdrs = {"X-Objstore-Bucket": "b", "X-Objstore-Key": "k", "X-Objstore-Policy": "replica:3"}
        async with s.put(url, data=b"hello", headers=hdrs) as resp:
            assert resp.status == 403
        wrong = internal_auth.headers("other-secret", "PUT", "/blobs/v1/0")
        async with s.put(url, data=b"hello", headers={**hdrs, **wrong}) as resp:
            assert resp.status == 403
        async with s.get(url) as resp:
            assert resp.status == 403
    assert len(node.store.index) == 0


async def test_missing_content_length_is_411(node: Node) -> None:
    async def gen() -> AsyncIterator[bytes]:
        yield b"abc"

    path = "/blobs/v1/0"
    hdrs = internal_auth.headers(SECRET, "PUT", path, target=node.address, extra={
        "X-Objstore-Bucket": "b", "X-Objstore-Key": "k", "X-Objstore-Policy": "replica:3"})
    async with aiohttp.ClientSession() as s:
        async with s.put(f"http://{node.address}{path}", data=gen(), headers=hdrs) as resp:  # chunked
            assert resp.status == 411
            assert (await resp.json())["code"] == MissingContentLength.code
    assert len(node.store.index) == 0


@pytest.mark.parametrize("size", [1000, 200_000])
async def test_short_body_stores_nothing(node: Node, client: StorageClient, size: int) -> None:
    with pytest.raises(IncompleteBody):
        await client.put_blob(node.address, "v1", 0, "b", "k", "replica:3", size, chunks(b"x" * (size // 2)))
    # The same over a raw socket that closes early: the node sees the body end short.
    path = "/blobs/v2/0"
    host, port = node.address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    placement = {"X-Objstore-Bucket": "b", "X-Objstore-Key": "k", "X-Objstore-Policy": "replica:3"}
    signed = internal_auth.headers(SECRET, "PUT", path, stream_length=size, target=node.address, extra=placement)
    head = (f"PUT {path} HTTP/1.1\r\nHost: {node.address}\r\nContent-Length: {size}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n")
    writer.write(head.encode() + b"y" * (size // 2))
    await writer.drain()
    writer.write_eof()
    await asyncio.wait_for(reader.read(), 10)  # the node closes the connection
    writer.close()
    # Wait (with a deadline) until both handlers have finished, with a 400 each.
    done = 'objstore_requests_total{op="put_blob",role="storage",status="400"} 2.0'
    async def finished() -> bool:
        return done in await _metrics(node)

    await eventually_async(finished, 10, 0.02, message=lambda: _metrics(node))
    assert len(node.store.index) == 0
    assert await client.head_blob(node.address, "v1", 0) is None
    assert await client.head_blob(node.address, "v2", 0) is None
    tmp_files = [p for p in Path(node.store.data_dir).rglob(".tmp-*")]
    assert tmp_files == []


async def _metrics(node: Node) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{node.address}/metrics") as resp:
            return await resp.text()


def _flip_byte(path: Path, offset: int) -> None:
    flip(path, offset, mask=0x01)


async def test_corrupt_first_block_is_corrupt_blob_not_bytes(node: Node, client: StorageClient) -> None:
    data = os.urandom(3000)
    await client.put_blob(node.address, "v1", 0, "b", "k", "replica:3", len(data), chunks(data))
    entry = node.store.index.get(next(iter(node.store.index.snapshot())))
    _flip_byte(Path(node.store.data_dir) / entry.location.file, entry.location.data_offset + 100)
    with pytest.raises(CorruptBlob):
        await get_all(client, node.address, "v1")
    assert "objstore_storage_corrupt_reads_total 1.0" in await _metrics(node)


async def test_corruption_mid_stream_truncates_and_sends_no_bad_byte(node: Node, client: StorageClient) -> None:
    data = os.urandom(3 * 1024 * 1024)  # a blob file of 768 blocks; reads go by 1 MiB
    await client.put_blob(node.address, "v1", 0, "b", "k", "replica:3", len(data), chunks(data, 1 << 16))
    entry = node.store.index.get(next(iter(node.store.index.snapshot())))
    bad_block = 600
    _flip_byte(Path(node.store.data_dir) / entry.location.file, entry.location.data_offset + bad_block * (4096 + 8) + 7)
    received = bytearray()
    with pytest.raises(ServiceUnavailable):
        async with client.get_blob(node.address, "v1", 0) as blob:
            assert blob.status == 200 and blob.content_length == len(data)
            async for chunk in blob.iter_chunks():
                received += chunk
    assert len(received) <= bad_block * 4096
    assert bytes(received) == data[: len(received)]
    # The blob is quarantined: not even a range that avoids the bad block is served now.
    with pytest.raises(NoSuchKey):
        await get_all(client, node.address, "v1", 0, 0, 4095)


async def test_stats_and_metrics(node: Node, client: StorageClient) -> None:
    await asyncio.gather(*(
        client.put_blob(node.address, f"v{i}", 0, "b", f"k{i}", "replica:3", 100, chunks(bytes(100))) for i in range(20)
    ))
    st = await client.stats(node.address)
    assert st["node_id"] == "s1" and st["blob_count"] == 20 and st["segments"] == 1
    assert st["used_bytes"] > 2000 and st["capacity_bytes"] >= st["used_bytes"]
    text = await _metrics(node)
    assert f'objstore_storage_used_bytes{{node="s1"}} {float(st["used_bytes"])}' in text
    assert 'objstore_requests_total{op="put_blob",role="storage",status="201"} 20.0' in text


async def test_key_header_must_be_percent_encoded_utf8(node: Node) -> None:
    path = "/blobs/v1/0"
    hdrs = internal_auth.headers(SECRET, "PUT", path, stream_length=3, target=node.address, extra={
        "X-Objstore-Bucket": "b", "X-Objstore-Key": quote("ok", safe="") + "%FF", "X-Objstore-Policy": "replica:3"})
    async with aiohttp.ClientSession() as s:
        async with s.put(f"http://{node.address}{path}", data=b"abc", headers=hdrs) as resp:
            assert resp.status == 400
    assert len(node.store.index) == 0



class MetadataStub:
    """A stand-in for the metadata service's POST /v1/nodes, scripted per test."""

    def __init__(self, replies: list[tuple[int, dict]]) -> None:
        self.replies = replies
        self.received: list[dict] = []
        self.authenticated: list[bool] = []
        self.address = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> "MetadataStub":
        async def handle(request: web.Request) -> web.Response:
            self.authenticated.append(internal_auth.verify_headers(SECRET, "POST", request.raw_path, request.headers,
                                                                    target=request.host))
            self.received.append(await request.json())
            status, body = self.replies.pop(0) if self.replies else (201, {})
            return web.json_response(body, status=status)

        app = web.Application()
        app.router.add_post("/v1/nodes", handle)
        self._runner, self.address = await serve_on_loopback(app)
        return self

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def closed_port_address() -> str:
    """A 127.0.0.1 address nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_registration_follows_leader_and_retries_with_backoff() -> None:
    from objstore.node.register import register_until_accepted

    leader = await MetadataStub([(500, {"code": "InternalError", "message": "busy", "extra": {}})]).start()
    follower = await MetadataStub([]).start()
    follower.replies = [(503, {"code": "NotLeader", "message": "", "extra": {"leader": leader.address}})] * 2
    cfg = StorageConfig(node_id="s7", data_dir="/unused", secret=SECRET, port=7007, zone="z2", weight=2.0,
                        metadata=(closed_port_address(), follower.address), advertise="10.0.0.7:7007")
    sleeps: list[float] = []

    async def fake_sleep(d: float) -> None:
        sleeps.append(d)

    async with aiohttp.ClientSession() as session:
        accepted = await register_until_accepted(cfg, lambda: 12345, session, sleep=fake_sleep)
    try:
        assert accepted == leader.address
        # dead -> sleep; follower -> NotLeader -> leader 500 -> sleep; dead -> sleep; follower -> leader 201
        assert len(sleeps) == 3 and sleeps[1] > sleeps[0] * 0.5 and all(d <= 5.0 for d in sleeps)
        assert all(leader.authenticated + follower.authenticated)
        node = leader.received[-1]["node"]
        assert node == {"node_id": "s7", "address": "10.0.0.7:7007", "zone": "z2", "weight": 2.0, "state": "up",
                        "capacity_bytes": 12345, "used_bytes": 0}
        assert len(leader.received) == 2 and len(follower.received) == 2
    finally:
        await leader.stop()
        await follower.stop()


async def test_node_heartbeats_in_background_while_serving(tmp_path: Path, client: StorageClient) -> None:
    gate = asyncio.Event()
    stub = MetadataStub([])

    async def handle(request: web.Request) -> web.Response:
        await gate.wait()  # the metadata service is slow to accept
        stub.received.append(await request.json())
        return web.json_response({}, status=200)

    app_ = web.Application()
    app_.router.add_post("/v1/nodes/heartbeat", handle)  # the first heartbeat registers the node
    runner_ = web.AppRunner(app_)
    await runner_.setup()
    site_ = web.TCPSite(runner_, "127.0.0.1", 0)
    await site_.start()
    meta = f"127.0.0.1:{site_._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    cfg = StorageConfig(node_id="s2", data_dir=str(tmp_path / "s2"), secret=SECRET, metadata=(meta,), port=1234,
                        heartbeat_interval=0.05)
    app = create_app(cfg, OPTS)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        await client.put_blob(address, "v1", 0, "b", "k", "replica:3", 3, chunks(b"abc"))  # serving already
        assert stub.received == []
        gate.set()
        await eventually_async(lambda: len(stub.received) >= 3, 10, 0.01, message="the node to heartbeat")
        first = stub.received[0]
        assert first["node"]["node_id"] == "s2"
        assert first["node"]["address"] == "127.0.0.1:1234"
        assert first["node"]["capacity_bytes"] > 0
        stats = stub.received[-1]["stats"]
        assert stats["blob_count"] == 1 and stats["used_bytes"] > 0
        # The store's space figures (objstore.node.store.BlobStore.space): free is the
        # filesystem's, at most capacity - used; the reserve is the default one.
        assert 0 < stats["free_bytes"] <= stats["capacity_bytes"] - stats["used_bytes"]
        assert stats["reserve_bytes"] == min(stats["capacity_bytes"] // 20, 1 << 30)
    finally:
        await runner.cleanup()
        await runner_.cleanup()


async def test_heartbeats_build_one_tls_context_per_ca(monkeypatch) -> None:
    """Each beat used to build a fresh client context (reading the CA bundle); aiohttp pools
    connections per context, so every beat paid a new TLS handshake."""
    from objstore.node import register

    built: list[str] = []

    def counting_context(ca: str):  # noqa: ANN202 - plain HTTP stands in for TLS here
        built.append(ca)
        return None

    monkeypatch.setattr(register, "client_context", counting_context)
    register._client_context.cache_clear()
    leader = await MetadataStub([(201, {}), (201, {})]).start()
    cfg = StorageConfig(node_id="s7", data_dir="/unused", secret=SECRET, port=7007, zone="z2",
                        metadata=(leader.address,), advertise="10.0.0.7:7007", tls_ca="/etc/ca-not-read.pem")
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                accepted = await register.post_until_accepted(cfg, "/v1/nodes", lambda: {"beat": 1}, session)
                assert accepted == leader.address
        assert built == ["/etc/ca-not-read.pem"]
        assert len(leader.received) == 3
    finally:
        register._client_context.cache_clear()
        await leader.stop()
