"""The storage node's lean front (objstore.node.hot_front) over raw sockets: which calls it
serves itself, hand-off to aiohttp on the same connection, one replay guard for both, answers
in order, closing on drain and stop."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
import uvloop
from aiohttp import web

from objstore import internal_auth
from objstore.config import StorageConfig
from objstore.internal_http import HttpPool
from objstore.internal_stream import StreamPool
from objstore.manifest import CommitManifest
from objstore.node.manifests import ManifestStore
from objstore.node.client import StorageClient
from objstore.tls import client_context, server_context
from objstore.types import ObjectVersion
from tests.harness.tls import make_ca_and_cert, needs_openssl
from objstore.node.app import DRAIN, HOT, create_app, site as node_site
from objstore.node.store import StoreOptions

SECRET = "test-secret"
PLACEMENT = {"X-Objstore-Bucket": "b", "X-Objstore-Key": "k", "X-Objstore-Policy": "replica:3"}


class Node:
    def __init__(self, app: web.Application, runner: web.AppRunner, address: str) -> None:
        self.app, self.runner, self.address = app, runner, address


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    app = create_app(StorageConfig(node_id="s1", data_dir=str(tmp_path / "s1"), secret=SECRET),
                     StoreOptions(block_size=4096))
    runner = web.AppRunner(app)
    await runner.setup()
    site = node_site(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Node(app, runner, f"127.0.0.1:{port}")
    await runner.cleanup()


def put_blob_request(address: str, vid: str, body: bytes, extra: str = "") -> bytes:
    path = f"/blobs/{vid}/0"
    signed = internal_auth.headers(SECRET, "PUT", path, stream_length=len(body), target=address, extra=PLACEMENT)
    head = (f"PUT {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {len(body)}\r\n{extra}"
            + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n")
    return head.encode() + body


def get_request(address: str, path: str) -> bytes:
    signed = internal_auth.headers(SECRET, "GET", path, target=address)
    return (f"GET {path} HTTP/1.1\r\nHost: {address}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
            + "\r\n").encode()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(head[0].split(" ")[1]), headers, body


async def connect(node: Node) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = node.address.split(":")
    return await asyncio.open_connection(host, int(port))


async def test_hot_calls_stay_on_the_lean_front(node: Node) -> None:
    reader, writer = await connect(node)
    data = os.urandom(4096)
    writer.write(put_blob_request(node.address, "v1", data))
    status, _, body = await read_answer(reader)
    assert status == 201 and json.loads(body)["size"] == 4096
    writer.write(get_request(node.address, "/blobs/v1/0").replace(b"\r\n\r\n", b"\r\nRange: bytes=0-4095\r\n\r\n"))
    status, headers, body = await read_answer(reader)
    assert (status, body, headers["x-objstore-size"]) == (206, data, "4096")
    # Still the lean front's connection: aiohttp never took it.
    assert len(node.app[HOT].connections) == 1
    writer.close()


async def test_manifest_calls_with_encoded_keys_stay_on_the_lean_front(node: Node) -> None:
    pool = HttpPool()
    try:
        async with aiohttp.ClientSession() as session:
            client = StorageClient(session, SECRET, pool=pool)
            key = "dir/ä key?&="
            manifest = CommitManifest("b", key, 7, ObjectVersion("b", key, "v7", 3, "0" * 32, 1.0), write_quorum=2)
            assert await client.put_manifest(node.address, manifest, ring_epoch=1)
            assert await client.put_manifests(node.address, [manifest], ring_epoch=1) == 0  # stored already
            assert [m.commit_index for m in await client.get_manifests(node.address, "b", key)] == [7]
            assert len(node.app[HOT].connections) == 1 and pool.opened == 1
            text = node.app[HOT].calls.metrics.render()[0].decode()
            assert 'objstore_requests_total{op="get_manifests",role="storage",status="200"} 1.0' in text
    finally:
        await pool.close()


async def test_other_calls_hand_the_connection_to_aiohttp_which_serves_the_rest(node: Node) -> None:
    reader, writer = await connect(node)
    writer.write(get_request(node.address, "/stats"))  # not a hot route
    status, _, body = await read_answer(reader)
    assert status == 200 and json.loads(body)["node_id"] == "s1"
    assert len(node.app[HOT].connections) == 0
    writer.write(put_blob_request(node.address, "v2", b"abc"))  # hot, but the connection is aiohttp's now
    status, _, body = await read_answer(reader)
    assert status == 201 and json.loads(body)["size"] == 3
    writer.close()


async def test_a_request_accepted_by_either_server_is_not_accepted_again_by_the_other(node: Node) -> None:
    request = put_blob_request(node.address, "v3", b"abc")
    # First through aiohttp (the connection handed off by a public path), then the same bytes
    # to the lean front on a new connection: one replay guard refuses it.
    reader, writer = await connect(node)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + request)
    assert (await read_answer(reader))[0] == 200
    assert (await read_answer(reader))[0] == 201
    writer.close()
    reader, writer = await connect(node)
    writer.write(request)
    status, _, body = await read_answer(reader)
    assert status == 403 and json.loads(body)["code"] == "AccessDenied"
    writer.close()


async def test_pipelined_requests_are_answered_in_order(node: Node) -> None:
    reader, writer = await connect(node)
    writer.write(b"".join(put_blob_request(node.address, f"p{i}", bytes([i]) * (i + 1)) for i in range(5)))
    sizes = [json.loads((await read_answer(reader))[2])["size"] for _ in range(5)]
    assert sizes == [1, 2, 3, 4, 5]
    writer.close()


async def test_unsigned_hot_call_is_refused_and_counted(node: Node) -> None:
    reader, writer = await connect(node)
    writer.write(f"PUT /blobs/v4/0 HTTP/1.1\r\nHost: {node.address}\r\nContent-Length: 3\r\n\r\nabc".encode())
    assert (await read_answer(reader))[0] == 403
    writer.close()
    text = node.app[HOT].calls.metrics.render()[0].decode()
    assert 'objstore_requests_total{op="put_blob",role="storage",status="403"} 1.0' in text


async def test_draining_answers_say_close_and_stop_closes_idle_connections(node: Node) -> None:
    idle_reader, idle_writer = await connect(node)
    idle_writer.write(put_blob_request(node.address, "v5", b"abc"))
    assert (await read_answer(idle_reader))[0] == 201
    reader, writer = await connect(node)
    node.app[DRAIN].draining = True
    writer.write(put_blob_request(node.address, "v6", b"abc"))
    status, headers, _ = await read_answer(reader)
    assert status == 201 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed after the answer
    await node.runner.cleanup()  # stops the site
    assert await asyncio.wait_for(idle_reader.read(), 10) == b""
    idle_writer.close()
    writer.close()


@needs_openssl
async def test_over_tls_hot_calls_and_handed_off_calls_are_served(tmp_path: Path) -> None:
    ca, cert, key = make_ca_and_cert(tmp_path)
    app = create_app(StorageConfig(node_id="s1", data_dir=str(tmp_path / "s1"), secret=SECRET))
    runner = web.AppRunner(app)
    await runner.setup()
    site = node_site(runner, "127.0.0.1", 0, ssl_context=server_context(str(cert), str(key)))
    await site.start()
    address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    tls = client_context(str(ca))
    pool = HttpPool(tls)
    try:
        async with aiohttp.ClientSession() as session:
            client = StorageClient(session, SECRET, tls=tls, pool=pool)
            data = os.urandom(4096)
            assert (await client.put_blob(address, "t1", 0, "b", "k", "replica:3", 4096, data))["size"] == 4096
            async with client.get_blob(address, "t1", 0, 0, 4095) as blob:
                assert await blob.read() == data
            assert len(app[HOT].connections) >= 1  # served by the lean front over TLS
            assert (await client.stats(address))["blob_count"] == 1  # a call handed to aiohttp
            assert (await client.put_blob(address, "t2", 0, "b", "k2", "replica:3", 3, b"abc"))["size"] == 3
    finally:
        await pool.close()
        await runner.cleanup()


@needs_openssl
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_over_tls_a_large_blob_is_read_through_the_streamed_client(tmp_path: Path, loop_kind: str) -> None:
    ca, cert, key = make_ca_and_cert(tmp_path)

    async def main() -> None:
        app = create_app(StorageConfig(node_id="s1", data_dir=str(tmp_path / "s1"), secret=SECRET))
        runner = web.AppRunner(app)
        await runner.setup()
        site = node_site(runner, "127.0.0.1", 0, ssl_context=server_context(str(cert), str(key)))
        await site.start()
        address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        tls = client_context(str(ca))
        pool, streams = HttpPool(tls), StreamPool(tls)
        try:
            async with aiohttp.ClientSession() as session:
                client = StorageClient(session, SECRET, tls=tls, pool=pool, streams=streams)
                data = os.urandom(3 * 1024 * 1024 + 5)
                assert (await client.put_blob(address, "big", 0, "b", "k", "replica:3", len(data),
                                              data))["size"] == len(data)
                for start, end in ((None, None), (1000, len(data) - 7)):
                    async with client.get_blob(address, "big", 0, start, end) as blob:
                        want = data[start or 0:(len(data) if end is None else end + 1)]
                        assert await blob.read() == want
                assert streams.opened == 1  # over TLS, and kept for the second read
        finally:
            await pool.close()
            await streams.close()
            await runner.cleanup()

    if loop_kind == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())


async def test_a_stopping_node_finishes_the_hot_call_in_flight_before_closing_its_store(node: Node,
                                                                                       monkeypatch) -> None:
    from objstore.node.app import MANIFESTS

    store = node.app[MANIFESTS]
    entered, release = asyncio.Event(), asyncio.Event()
    real_put = store.put

    async def held_put(*args, **kwargs):
        entered.set()
        await release.wait()
        return await real_put(*args, **kwargs)

    monkeypatch.setattr(store, "put", held_put)
    manifest = CommitManifest("b", "k", 3, ObjectVersion("b", "k", "v3", 3, "0" * 32, 1.0), write_quorum=2)
    body = json.dumps(manifest.to_dict()).encode()
    path = "/manifests?ring_epoch=1"
    signed = internal_auth.headers(SECRET, "PUT", path, body=body, target=node.address)
    reader, writer = await connect(node)
    writer.write((f"PUT {path} HTTP/1.1\r\nHost: {node.address}\r\nContent-Length: {len(body)}\r\n"
                  + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n").encode() + body)
    await asyncio.wait_for(entered.wait(), 10)
    stopping = asyncio.ensure_future(node.runner.cleanup())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waits for the call in flight
    release.set()
    status, headers, answer = await read_answer(reader)
    assert (status, json.loads(answer), headers["connection"]) == (200, {"stored": True}, "close")
    await asyncio.wait_for(stopping, 10)
    writer.close()
    again = ManifestStore(store.path.rsplit("/", 1)[0])
    again.open()
    assert [m.commit_index for m in again.get("b", "k")] == [3]  # durable before the store closed
    again.close()


async def _answer_or_close(node: Node, request: bytes) -> int | None:
    """The status answered to ``request`` on a new connection, None if it was closed unanswered."""
    reader, writer = await connect(node)
    writer.write(request)
    try:
        return (await read_answer(reader))[0]
    except asyncio.IncompleteReadError:
        return None
    finally:
        writer.close()


@pytest.mark.parametrize("length", [b"\xb2", b"\xb9", b"+3", b"3_0", b"-0", b"3 3"])
async def test_a_content_length_that_is_not_ascii_digits_gets_aiohttps_answer(node: Node, length: bytes) -> None:
    # Python's str.isdigit() takes '²' and int() takes '+3' or '3_0'; HTTP takes neither.
    request = put_blob_request(node.address, "v7", b"abc").replace(b"Content-Length: 3\r\n",
                                                                    b"Content-Length: " + length + b"\r\n")
    assert await _answer_or_close(node, request) == 400
    assert await _answer_or_close(node, put_blob_request(node.address, "v7", b"abc")) == 201


@pytest.mark.parametrize("name", [b"X Bad", b"X-Bad\x01", b"X(Bad)", b"X-B\xe4d", b"X/Bad", b"X-Ok: a\x01b\r\nX-More",
                                  b"X-Ok: a\rb\r\nX-More", b"X-Ok: a\x7fb\r\nX-More", b"X-Ok: a\x00b\r\nX-More",
                                  b"X-Ok: a\r\rX-More"])
async def test_a_header_line_with_characters_http_forbids_gets_aiohttps_answer(node: Node, name: bytes) -> None:
    request = put_blob_request(node.address, "v8", b"abc", extra=(name + b": y\r\n").decode("latin-1"))
    assert await _answer_or_close(node, request) == 400


def signed_request(address: str, method: str, path: str, body: bytes = b"") -> bytes:
    signed = internal_auth.headers(SECRET, method, path, stream_length=len(body) if method == "PUT" else None,
                                   target=address, extra=PLACEMENT if method == "PUT" else None)
    head = (f"{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in signed.items()) + "\r\n")
    return head.encode("latin-1") + body


@pytest.mark.parametrize("shard", ["%C2%B2", "%D9%A3", "%EF%BC%93", "\xb2"])
@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
async def test_a_shard_in_digits_other_than_ascii_is_an_invalid_argument(node: Node, method: str,
                                                                        shard: str) -> None:
    # '²' (raw, served by the lean front, or percent-encoded, by aiohttp) made int() raise: 500;
    # '٣' and '３' (Arabic-Indic, fullwidth) were taken as shard 3.
    reader, writer = await connect(node)
    writer.write(signed_request(node.address, method, f"/blobs/v9/{shard}", b"abc" if method == "PUT" else b""))
    status, _, body = await read_answer(reader)
    if method == "GET" and shard == "\xb2":  # not a hot call (no Range): aiohttp refuses the raw byte
        assert status == 400
    else:
        assert (status, json.loads(body)["code"]) == (400, "InvalidArgument")
    writer.close()
    reader, writer = await connect(node)
    writer.write(get_request(node.address, "/blobs/v9/3"))
    assert (await read_answer(reader))[0] == 404  # nothing stored as shard 3
    writer.close()


@pytest.mark.parametrize("size", [64 * 1024, 2 * 1024 * 1024])  # served by the lean front; by aiohttp
async def test_a_body_that_keeps_coming_is_not_cut_off_and_a_silent_connection_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    from objstore.node import hot_front
    monkeypatch.setattr(hot_front, "KEEPALIVE", 0.8)  # the sweep runs every 0.2 s
    app = create_app(StorageConfig(node_id="s1", data_dir=str(tmp_path / "s1"), secret=SECRET),
                     StoreOptions(block_size=4096))
    runner = web.AppRunner(app)
    await runner.setup()
    site = node_site(runner, "127.0.0.1", 0)
    await site.start()
    node = Node(app, runner, f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
    try:
        silent_reader, silent_writer = await connect(node)
        silent_writer.write(b"PUT /blobs/")  # a head begun, then nothing
        reader, writer = await connect(node)
        data = os.urandom(size)
        request = put_blob_request(node.address, "slow", data)
        head_end = len(request) - size
        writer.write(request[:head_end])
        await asyncio.sleep(0.5)
        pieces = 20
        for i in range(pieces):  # over 2 s, 2.5 times the idle limit, bytes every 0.1 s
            writer.write(data[i * size // pieces:(i + 1) * size // pieces])
            await writer.drain()
            await asyncio.sleep(0.1)
        status, _, body = await read_answer(reader)
        assert status == 201 and json.loads(body)["size"] == size
        writer.close()
        assert await asyncio.wait_for(silent_reader.read(), 5) == b""  # closed as idle
        silent_writer.close()
    finally:
        await runner.cleanup()
