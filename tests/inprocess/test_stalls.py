"""Full and paused storage nodes against an in-process cluster: every wait is bounded.

The gateway runs with short bounds (``STRAGGLER`` and ``READ_STALL``), so a stalled node
(the harness's ``stall``: a paused process that keeps its connections open) costs each
request well under a second; without the bounds the same requests would wait for the
storage client's 30 s socket timeout. A node whose disk is "full" (a tiny
``capacity_bytes``) answers 507 and its blob goes to a handoff node.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from pathlib import Path
from typing import AsyncIterator

import botocore.exceptions
import pytest

from gateway.datapath.reader import read_blob
from gateway.datapath.replicate import write_replicas
from objstore.node.blobfiles import BlobFileWriter
from tests.harness.cluster import InProcessCluster

BUCKET = "stalls"
STRAGGLER, READ_STALL = 0.3, 0.3
BOUND = 5.0  # far below the 30 s a stalled node costs without the bounds, far above the bounds
SMALL, LARGE = 5000, 3 * 1024 * 1024
MIB = 1024 * 1024
BOUNDS = {"straggler_timeout_seconds": STRAGGLER, "read_stall_seconds": READ_STALL}


async def cluster(tmp_path: Path, nodes: int = 3, policy: str = "replica:3", gateway: dict | None = None,
                  **kw) -> InProcessCluster:
    c = await InProcessCluster(tmp_path / "cluster", storage_nodes=nodes, default_policy=policy,
                               gateway={**BOUNDS, **(gateway or {})}, **kw).start()
    await c.s3("create_bucket", Bucket=BUCKET)
    return c


@pytest.fixture
async def replica3(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    c = await cluster(tmp_path)
    try:
        yield c
    finally:
        for n in c.nodes.values():
            n.resume()
        await c.stop()


async def timed(coro) -> tuple[object, float]:  # noqa: ANN001
    began = time.monotonic()
    result = await asyncio.wait_for(coro, 30)
    return result, time.monotonic() - began


async def put(c: InProcessCluster, key: str, body: bytes) -> None:
    await c.s3("put_object", Bucket=BUCKET, Key=key, Body=body)


async def get(c: InProcessCluster, key: str) -> bytes:
    resp = await c.s3("get_object", Bucket=BUCKET, Key=key)
    return await asyncio.to_thread(resp["Body"].read)


async def placement(c: InProcessCluster, key: str) -> tuple[str, ...]:
    return (await c.meta.get_object(BUCKET, key)).placement


@pytest.mark.parametrize("size", [SMALL, LARGE])  # sent whole; streamed (the node never asks for the body)
async def test_a_put_abandons_a_paused_node_after_the_straggler_bound(replica3, size):
    c = replica3
    c.nodes["s1"].stall()
    body = os.urandom(size)
    _, took = await timed(put(c, "k", body))
    assert took < BOUND
    assert sorted(await placement(c, "k")) == ["s2", "s3"]  # only the nodes that acknowledged
    assert c.ctx.topology.is_suspect("s1")
    assert await get(c, "k") == body


async def test_an_abandoned_node_is_suspected_for_the_gateways_suspect_timeout(tmp_path):
    """``suspect_seconds`` (``--suspect-timeout``) bounds how long the gateway keeps new
    blobs off a node it abandoned: once it has passed, the next PUT reaches all three."""
    c = await cluster(tmp_path, gateway={"suspect_seconds": 0.5})
    try:
        c.nodes["s1"].stall()
        await put(c, "k", b"x" * SMALL)
        assert c.ctx.topology.is_suspect("s1")
        c.nodes["s1"].resume()
        await asyncio.sleep(0.6)
        assert not c.ctx.topology.is_suspect("s1")
        await put(c, "k2", b"y" * SMALL)
        assert sorted(await placement(c, "k2")) == ["s1", "s2", "s3"]
    finally:
        for n in c.nodes.values():
            n.resume()
        await c.stop()


async def test_a_put_short_of_w_fails_after_the_gateways_storage_timeout(tmp_path):
    """Two of three nodes paused: no W acknowledgements, so no straggler bound applies and
    the write waits on them for ``storage_timeout_seconds`` (``--storage-timeout``, 30 s by
    default), then fails with 503 and suspects them."""
    c = await cluster(tmp_path, gateway={"storage_timeout_seconds": 1.0})
    try:
        c.nodes["s1"].stall()
        c.nodes["s2"].stall()
        began = time.monotonic()
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            await asyncio.wait_for(put(c, "k", b"x" * SMALL), 20)
        took = time.monotonic() - began
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert 1.0 <= took < BOUND, took
        assert c.ctx.topology.is_suspect("s1") and c.ctx.topology.is_suspect("s2")
    finally:
        for n in c.nodes.values():
            n.resume()
        await c.stop()


async def test_a_node_that_stops_reading_mid_body_is_dropped_while_the_others_keep_up(replica3, caplog):
    caplog.set_level(logging.WARNING, logger="gateway.datapath.fanout")
    c = replica3
    nodes = [c.ctx.topology.node(i) for i in ("s1", "s2", "s3")]
    body = os.urandom(12 * MIB)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 256 * 1024):
            if i == 2 * MIB:
                c.nodes["s1"].stall()  # s1 took the first 2 MiB, then pauses
            yield body[i : i + 256 * 1024]

    stored, took = await timed(write_replicas(
        c.ctx.storage, c.ctx.topology, nodes, version_id="0000018c2f3a1b2c-000001-gw1", bucket=BUCKET, key="k",
        policy="replica:3", size=len(body), chunks=chunks(), write_quorum=2, straggler=STRAGGLER))
    assert stored == ["s2", "s3"] and took < BOUND
    assert any("abandoning s1" in r.getMessage() and "took nothing" in r.getMessage() for r in caplog.records)


async def test_a_paused_replica_is_abandoned_for_the_next_before_the_first_byte(replica3):
    c = replica3
    body = os.urandom(LARGE)
    await put(c, "k", body)
    first = c.nodes[(await placement(c, "k"))[0]]
    first.stall()
    data, took = await timed(get(c, "k"))
    assert data == body and took < BOUND
    assert c.ctx.topology.is_suspect(first.node_id)


async def test_a_replica_that_stalls_mid_stream_is_abandoned_and_the_rest_comes_from_the_next(replica3):
    c = replica3
    body = os.urandom(8 * MIB)
    await put(c, "k", body)
    version = await c.meta.get_object(BUCKET, "k")
    first = c.nodes[version.placement[0]]
    first.slow(0.01)  # its stream is still going when it pauses
    stream = read_blob(c.ctx.storage, c.ctx.topology, version.version_id, version.placement, 0, len(body) - 1)
    got = bytearray(await stream.__anext__())
    first.stall()
    began = time.monotonic()
    async for chunk in stream:
        got += chunk
    assert bytes(got) == body
    assert time.monotonic() - began < BOUND
    assert c.ctx.topology.is_suspect(first.node_id)


async def test_the_last_replica_left_is_waited_for_past_the_stall_bound(replica3):
    c = replica3
    body = os.urandom(LARGE)
    await put(c, "k", body)
    version = await c.meta.get_object(BUCKET, "k")
    only = c.nodes[version.placement[0]]
    only.stall()
    asyncio.get_running_loop().call_later(3 * READ_STALL, only.resume)  # a pause, not a death
    stream = read_blob(c.ctx.storage, c.ctx.topology, version.version_id, version.placement[:1], 0, len(body) - 1)
    assert b"".join([chunk async for chunk in stream]) == body


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_a_full_node_hands_its_replica_to_another_node_at_full_redundancy(tmp_path, size):
    tiny = {"capacity_bytes": 4096, "reserve_bytes": 0}
    c = await cluster(tmp_path, nodes=4, storage={"s1": tiny})
    try:
        key = next(k for k in (f"k{i}" for i in range(1000)) if "s1" in c.ctx.topology.ring.locate(BUCKET, k, 3))
        body = os.urandom(size)
        await put(c, key, body)
        where = await placement(c, key)
        assert len(set(where)) == 3 and "s1" not in where
        assert await get(c, key) == body
        stats = await c.ctx.storage.stats(c.nodes["s1"].address)
        assert stats["blob_count"] == 0 and stats["capacity_bytes"] == 4096
    finally:
        await c.stop()


async def test_a_disk_filling_mid_stream_leaves_fewer_copies_recorded(tmp_path, monkeypatch):
    c = await cluster(tmp_path, nodes=4)
    s1_dir = str(c.nodes["s1"].data_dir)
    real_write = BlobFileWriter.write

    def write(self: BlobFileWriter, data: bytes) -> None:
        if self.data_dir.startswith(s1_dir) and self.written >= MIB:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)

    monkeypatch.setattr(BlobFileWriter, "write", write)
    try:
        key = next(k for k in (f"k{i}" for i in range(1000)) if "s1" in c.ctx.topology.ring.locate(BUCKET, k, 3))
        body = os.urandom(LARGE)
        await put(c, key, body)
        where = await placement(c, key)
        assert len(where) == 2 and "s1" not in where  # the body had started: no handoff, W copies
        assert await get(c, key) == body
    finally:
        await c.stop()


async def test_an_ec_write_and_read_bound_a_paused_shard_node(tmp_path):
    c = await cluster(tmp_path, nodes=4, policy="ec:2+2")
    try:
        body = os.urandom(LARGE)
        key = "k"
        victim = c.ctx.topology.ring.locate(BUCKET, key, 4)[0]  # data shard 0
        c.nodes[victim].stall()
        _, took = await timed(put(c, key, body))
        where = await placement(c, key)
        assert took < BOUND and where[0] == "" and len([p for p in where if p]) == 3
        c.nodes[victim].resume()
        await put(c, "k2", body)
        shard0 = c.nodes[(await placement(c, "k2"))[0]]
        shard0.stall()
        data, took = await timed(get(c, "k2"))
        assert data == body and took < BOUND  # decoded from the other shards
    finally:
        for n in c.nodes.values():
            n.resume()
        await c.stop()
