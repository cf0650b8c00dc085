"""Scrubbing through a storage node's HTTP service: a read that finds a corrupt block
quarantines the blob (404 from then on), ``/v1/scrub`` and ``/v1/scrub/start``, and the
scrub metrics."""
from __future__ import annotations

import os
from pathlib import Path

import aiohttp
import pytest

from objstore.errors import AccessDenied, CorruptBlob, NoSuchKey, ServiceUnavailable
from objstore.node.app import SCRUB
from objstore.node.blob import BlobId
from objstore.node.client import StorageClient
from tests.harness.disk import flip
from tests.harness.eventually import eventually_async
from tests.inprocess.test_storage_node import Node, chunks, client, get_all, node  # noqa: F401 - fixtures


async def put(client: StorageClient, node: Node, vid: str, data: bytes) -> None:
    await client.put_blob(node.address, vid, 0, "bkt", f"key-{vid}", "replica:3", len(data), chunks(data))


def damage(node: Node, vid: str, offset_in_data: int) -> None:
    loc = node.store.index.get(BlobId(vid, 0)).location
    flip(Path(node.store.data_dir) / loc.file, loc.data_offset + offset_in_data)


@pytest.mark.parametrize("size", [5000, 3_000_000])  # answered whole; streamed (the damage found mid-stream)
async def test_a_read_that_finds_corruption_quarantines_the_blob(node: Node, client: StorageClient,
                                                                 size: int) -> None:
    data = os.urandom(size)
    await put(client, node, "v1", data)
    await put(client, node, "v2", b"fine")
    damage(node, "v1", size - 10)
    with pytest.raises(CorruptBlob if size < 1 << 20 else ServiceUnavailable):  # a 500, or a body cut short
        await get_all(client, node.address, "v1")
    # From now on the blob is missing (the gateway fails over at once), HEAD too.
    with pytest.raises(NoSuchKey):
        await get_all(client, node.address, "v1")
    assert await client.head_blob(node.address, "v1", 0) is None
    assert await get_all(client, node.address, "v2") == (200, 4, b"fine")
    status = await client.scrub_status(node.address)
    assert status["corrupt_found"] == 1 and status["quarantined"] == 1
    # A repair writes it again: served again, counted as repaired.
    await put(client, node, "v1", data)
    assert await get_all(client, node.address, "v1") == (200, size, data)
    status = await client.scrub_status(node.address)
    assert status["repaired"] == 1 and status["quarantined"] == 0


async def test_scrub_start_finds_damage_and_metrics_count_it(node: Node, client: StorageClient) -> None:
    for i in range(5):
        await put(client, node, f"v{i}", os.urandom(3000))
    await eventually_async(lambda: node.app[SCRUB].passes_completed >= 1)  # the first pass runs at start-up
    damage(node, "v3", 100)
    started = await client.scrub_start(node.address)
    pass_id = started["pass_id"]
    assert pass_id == 2  # the start-up pass was 1; the next is a day away unless started

    async def done() -> bool:
        return (await client.scrub_status(node.address))["passes_completed"] >= pass_id

    await eventually_async(done)
    status = await client.scrub_status(node.address)
    assert status["corrupt_found"] == 1 and status["last_pass"]["corrupt"] == 1
    assert status["last_pass"]["blobs_total"] == 5 and status["bytes_verified"] > 0
    with pytest.raises(NoSuchKey):
        await get_all(client, node.address, "v3")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{node.address}/metrics") as resp:
            text = await resp.text()
    assert 'objstore_scrub_corrupt_blobs_total{node="s1"} 1.0' in text
    assert 'objstore_scrub_pass_progress_ratio{node="s1"} 1.0' in text
    assert "objstore_scrub_bytes_verified_total" in text and "objstore_scrub_repaired_blobs_total" in text
    assert "objstore_scrub_last_full_pass_timestamp_seconds" in text


async def test_scrub_routes_are_signed(node: Node) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AccessDenied):
            await StorageClient(session, "wrong-secret").scrub_start(node.address)
