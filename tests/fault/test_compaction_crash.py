"""A real storage node killed with SIGKILL while it compacts loses no live blob, serves no
torn one and brings no deleted one back; after the restart, compaction finishes the job.

The node holds many small segments, most of their records deleted; it restarts with a
compaction check every 50 ms and is killed at a random moment of the rewrite (seeded).
"""
from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import aiohttp
import pytest

from objstore.errors import NoSuchKey
from objstore.node.client import StorageClient
from tests.fault.test_storage_crash import SECRET, NodeProcess, chunks

SEGMENT = ("--segment-bytes", "16384", "--gc-interval", "0")
BLOBS = 600


def data_of(i: int, rng: random.Random) -> bytes:
    return rng.randbytes(200 + (i * 7919) % 3000)


async def _load(client: StorageClient, address: str, rng: random.Random) -> tuple[dict[str, bytes], set[str]]:
    live: dict[str, bytes] = {}
    sem = asyncio.Semaphore(16)

    async def put(i: int) -> None:
        vid = f"0000018c2f3a1b2c-{i:06d}"
        data = data_of(i, rng)
        async with sem:
            await client.put_blob(address, vid, 0, "bkt", f"k/{i}", "replica:3", len(data), chunks(data))
        live[vid] = data

    await asyncio.gather(*(put(i) for i in range(BLOBS)))
    gone = set(rng.sample(sorted(live), k=BLOBS * 3 // 4))
    await asyncio.gather(*(client.delete_blob(address, vid, 0) for vid in gone))
    return {v: d for v, d in live.items() if v not in gone}, gone


async def _verify(client: StorageClient, address: str, live: dict[str, bytes], gone: set[str]) -> None:
    for vid, data in live.items():
        async with client.get_blob(address, vid, 0) as blob:
            assert await blob.read() == data, f"blob {vid} lost or torn"
    for vid in gone:
        with pytest.raises(NoSuchKey):
            async with client.get_blob(address, vid, 0) as blob:
                await blob.read()
    stats = await client.stats(address)
    assert stats["blob_count"] == len(live)


async def _run(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    node = NodeProcess(tmp_path / "s1", tmp_path / "s1.log", (*SEGMENT, "--compaction-interval", "0"))
    node.start()
    try:
        await node.wait_healthy()
        async with aiohttp.ClientSession() as session:
            client = StorageClient(session, SECRET)
            live, gone = await _load(client, node.address, rng)
            segments_before = (await client.stats(node.address))["segments"]
        assert await node.stop(signal.SIGTERM) == 0
        node.extra = (*SEGMENT, "--compaction-interval", "0.05")
        node.start()
        await node.wait_healthy()
        await asyncio.sleep(rng.uniform(0.0, 0.35))  # somewhere in the rewrite (about 0.6 s here)
        assert await node.stop(signal.SIGKILL) == -signal.SIGKILL
        node.start()
        await node.wait_healthy()
        async with aiohttp.ClientSession() as session:
            client = StorageClient(session, SECRET)
            await _verify(client, node.address, live, gone)

            async def settled() -> int:
                n = (await client.stats(node.address))["segments"]
                await asyncio.sleep(0.3)
                return n if n == (await client.stats(node.address))["segments"] else -1

            deadline = asyncio.get_running_loop().time() + 30
            while (after := await settled()) < 0 and asyncio.get_running_loop().time() < deadline:
                pass
            assert 0 < after < segments_before / 2, (segments_before, after)
            await _verify(client, node.address, live, gone)
        assert await node.stop(signal.SIGTERM) == 0, node.log.read_text()
    finally:
        node.kill()


@pytest.mark.timeout(120)
async def test_sigkill_during_compaction_loses_and_resurrects_nothing(tmp_path: Path) -> None:
    await _run(tmp_path, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", range(10))
async def test_sigkill_during_compaction_many_seeds(tmp_path: Path, seed: int) -> None:
    await _run(tmp_path, seed)
