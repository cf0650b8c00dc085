"""``PUT /blobs/batch`` on a storage node served in-process (lean front and aiohttp alone):
every blob of a batch is stored durably and answered on its own, a malformed batch is
refused whole and stores nothing, an unsigned or tampered one is refused."""
from __future__ import annotations

import os
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from objstore import internal_auth
from objstore.config import StorageConfig
from objstore.errors import InsufficientStorage, InvalidArgument, KeyTooLongError
from objstore.internal_http import HttpPool
from objstore.node import blob_batch
from objstore.node.app import FRONT_ENV, HOT, STORE, create_app, site as node_site
from objstore.node.blob import BlobId
from objstore.node.blob_batch import BlobWrite
from objstore.node.client import StorageClient
from objstore.node.store import BlobStore, StoreOptions
from xxhash import xxh64

SECRET = "test-secret"
OPTS = StoreOptions(block_size=4096)


class Node:
    def __init__(self, app: web.Application, runner: web.AppRunner, address: str, data_dir: Path) -> None:
        self.app, self.runner, self.address, self.data_dir = app, runner, address, data_dir

    def calls(self, op: str) -> float:
        """Requests of ``op`` the node answered (its request metrics)."""
        total = 0.0
        for line in self.app[HOT].calls.metrics.render()[0].decode().splitlines():
            if line.startswith("objstore_requests_total{") and f'op="{op}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(params=["hot-front", "aiohttp-front"])
async def node(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    if request.param == "aiohttp-front":
        monkeypatch.setenv(FRONT_ENV, "aiohttp")
    cfg = StorageConfig(node_id="s1", data_dir=str(tmp_path / "s1"), secret=SECRET)
    app = create_app(cfg, OPTS)
    runner = web.AppRunner(app)
    await runner.setup()
    site = node_site(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield Node(app, runner, f"127.0.0.1:{port}", tmp_path / "s1")
    await runner.cleanup()


@pytest.fixture(params=["session", "pool"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[StorageClient]:
    pool = HttpPool() if request.param == "pool" else None
    async with aiohttp.ClientSession() as session:
        yield StorageClient(session, SECRET, pool=pool)
    if pool is not None:
        await pool.close()


def blobs(n: int, size: int = 4096) -> list[BlobWrite]:
    return [BlobWrite(f"v{i}", i % 2, "b", f"dir/ä key {i}", "replica:3", os.urandom(size)) for i in range(n)]


async def reopened(node: Node) -> BlobStore:
    """The node's data directory opened by a new store after the node stopped (what is on disk)."""
    await node.runner.cleanup()
    store = BlobStore(str(node.data_dir), OPTS)
    await store.open()
    return store


async def test_every_blob_of_a_batch_is_stored_durably_and_answered_on_its_own(node: Node,
                                                                               client: StorageClient) -> None:
    sent = blobs(5) + [BlobWrite("v-empty", 0, "b", "empty", "replica:3", b"")]
    fsyncs = node.app[STORE].stats()["fsyncs"]
    answers = await client.put_blobs(node.address, sent)
    assert answers == [{"size": len(b.data), "xxh64": xxh64(b.data).hexdigest()} for b in sent]
    assert node.calls("put_blob_batch") == 1 and node.calls("put_blob") == 0
    assert node.app[STORE].stats()["fsyncs"] - fsyncs == 1  # one group commit for the batch
    for b in sent:  # read back through the node
        async with client.get_blob(node.address, b.version_id, b.shard) as stream:
            assert await stream.read() == b.data
    store = await reopened(node)  # and on disk
    try:
        for b in sent:
            entry = store.head(BlobId(b.version_id, b.shard))
            assert (entry.header.bucket, entry.header.key, entry.header.size) == (b.bucket, b.key, len(b.data))
            async with await store.open_read(entry.blob_id) as read:
                assert b"".join([bytes(c) async for c in read.chunks()]) == b.data
    finally:
        await store.close()


async def test_a_blob_the_node_refuses_fails_alone(node: Node, client: StorageClient) -> None:
    sent = blobs(3)
    sent[1] = BlobWrite("v1", 0, "b", "k" * 5000, "replica:3", b"x")
    answers = await client.put_blobs(node.address, sent)
    assert isinstance(answers[1], (KeyTooLongError, InvalidArgument))
    assert answers[0]["size"] == answers[2]["size"] == 4096
    assert node.app[STORE].head(BlobId("v2", 0)).header.size == 4096


async def test_a_full_node_refuses_each_blob_with_insufficient_storage(node: Node, client: StorageClient) -> None:
    store = node.app[STORE]
    store.space = lambda: {"free_bytes": 0, "reserve_bytes": 0}  # type: ignore[method-assign]
    answers = await client.put_blobs(node.address, blobs(2))
    assert all(isinstance(a, InsufficientStorage) for a in answers)
    assert store.stats()["blob_count"] == 0


def signed_request(address: str, body: bytes) -> dict[str, str]:
    return internal_auth.headers(SECRET, "PUT", blob_batch.PATH, body=body, target=address)


@pytest.mark.parametrize("cut", ["sizes", "head", "trailing", "surrogate"])
async def test_a_malformed_batch_is_refused_with_a_clear_error_and_stores_nothing(node: Node, cut: str) -> None:
    body = blob_batch.encode_request(blobs(3))
    if cut == "sizes":
        body = body[:-1]  # the last blob is a byte short
    elif cut == "head":
        body = b'{"blobs": [{"vid": "v1"}]}\n' + body.split(b"\n", 1)[1]
    elif cut == "surrogate":  # valid JSON, but a key no blob header can hold
        body = body.replace(b'"key":"dir/', b'"key":"\\ud800dir/', 1)
    else:
        body += b"x"
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://{node.address}{blob_batch.PATH}", data=body,
                               headers=signed_request(node.address, body)) as resp:
            assert resp.status == 400
            answer = await resp.json()
    assert answer["code"] == "InvalidArgument" and answer["message"].startswith("malformed blob batch")
    assert node.app[STORE].stats()["blob_count"] == 0
    store = await reopened(node)
    try:
        assert store.stats()["blob_count"] == 0
    finally:
        await store.close()


@pytest.mark.parametrize("how", ["unsigned", "other-body", "other-secret"])
async def test_a_batch_without_a_valid_signature_is_refused(node: Node, how: str) -> None:
    body = blob_batch.encode_request(blobs(2))
    if how == "unsigned":
        headers: dict[str, str] = {}
    elif how == "other-body":  # signed for one body, sent with another (placement changed)
        headers = signed_request(node.address, body)
        body = body.replace(b'"bucket":"b"', b'"bucket":"c"', 1)
    else:
        headers = internal_auth.headers("other-secret", "PUT", blob_batch.PATH, body=body, target=node.address)
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://{node.address}{blob_batch.PATH}", data=body, headers=headers) as resp:
            assert resp.status == 403
            assert (await resp.json())["code"] == "AccessDenied"
    assert node.app[STORE].stats()["blob_count"] == 0
