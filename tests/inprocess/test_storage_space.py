"""A storage node's space over HTTP: 507 InsufficientStorage before the body, deletes that
always work, a real ENOSPC answered 507 while reads and deletes go on, and ``/stats``."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

from objstore.config import StorageConfig
from objstore.errors import InsufficientStorage
from objstore.node.app import STORE, create_app, site as node_site
from objstore.node.blob import BlobId
from objstore.node.client import StorageClient
from objstore.node.store import StoreOptions

SECRET = "test-secret"
MIB = 1024 * 1024


@pytest.fixture
async def client() -> AsyncIterator[StorageClient]:
    async with aiohttp.ClientSession() as session:
        yield StorageClient(session, SECRET)


async def serve(tmp_path: Path, opts: StoreOptions) -> tuple[web.AppRunner, str]:
    cfg = StorageConfig(node_id="s1", data_dir=str(tmp_path / "s1"), secret=SECRET)
    runner = web.AppRunner(create_app(cfg, opts))
    await runner.setup()
    site = node_site(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


class Body:
    """A streamed body that records whether anyone started reading it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        for i in range(0, len(self.data), 64 * 1024):
            yield self.data[i : i + 64 * 1024]


async def put(client: StorageClient, address: str, vid: str, body: bytes | Body) -> dict:
    size = len(body.data if isinstance(body, Body) else body)
    return await client.put_blob(address, vid, 0, "b", "k", "replica:3", size, body)


async def test_a_node_refuses_a_blob_beyond_its_reserve_before_the_body_and_deletes_still_work(
    tmp_path: Path, client: StorageClient
) -> None:
    runner, addr = await serve(tmp_path, StoreOptions(capacity_bytes=4 * MIB, reserve_bytes=MIB))
    try:
        first = os.urandom(2 * MIB)
        await put(client, addr, "v1", Body(first))
        stats = await client.stats(addr)
        assert stats["capacity_bytes"] == 4 * MIB and stats["reserve_bytes"] == MIB
        assert stats["free_bytes"] == 4 * MIB - stats["used_bytes"] < 2 * MIB
        refused = Body(os.urandom(MIB + 512 * 1024))
        with pytest.raises(InsufficientStorage):
            await put(client, addr, "v2", refused)
        assert not refused.started  # answered before "100 Continue": no body byte was sent
        with pytest.raises(InsufficientStorage):
            await put(client, addr, "v3", os.urandom(1_200_000 - 100_000))  # a whole body too
        async with client.get_blob(addr, "v1", 0) as blob:
            assert await blob.read() == first
        await client.delete_blob(addr, "v1", 0)
        assert (await client.stats(addr))["free_bytes"] > 3 * MIB  # its file is gone
        await put(client, addr, "v2", Body(refused.data))
    finally:
        await runner.cleanup()


class FailingDisk:
    """os.write failing with ENOSPC for writes of more than ``limit`` bytes while ``full``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.full = False

    def write(self, fd: int, data: bytes) -> int:
        if self.full and len(data) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


async def test_a_real_enospc_is_a_507_and_the_node_keeps_serving_reads_and_deletes(
    tmp_path: Path, client: StorageClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FailingDisk(limit=4096)
    runner, addr = await serve(tmp_path, StoreOptions())
    store = runner.app[STORE]
    monkeypatch.setattr(store._segments, "_write", disk.write)  # the segment log's injected write
    try:
        kept = os.urandom(10_000)
        await put(client, addr, "v1", kept)
        disk.full = True
        with pytest.raises(InsufficientStorage):
            await put(client, addr, "v2", os.urandom(10_000))
        async with client.get_blob(addr, "v1", 0) as blob:
            assert await blob.read() == kept
        await client.delete_blob(addr, "v1", 0)  # a tombstone is small enough to fit
        assert store.index.get(BlobId("v1", 0)) is None
        disk.full = False
        await put(client, addr, "v3", os.urandom(10_000))
    finally:
        await runner.cleanup()


@pytest.fixture
def small_ext4(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB ext4 filesystem, loop-mounted (root only; skipped where mounting is impossible)."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("mount"):
        pytest.skip("needs root and mkfs.ext4 to mount a small filesystem")
    image, mnt = tmp_path / "disk.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(32 * MIB)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], capture_output=True, text=True)
    mounted = made.returncode == 0 and subprocess.run(
        ["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
    if not mounted or mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount a filesystem here: {(mounted and mounted.stderr) or made.stderr}".strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem refuses another byte; the bytes written."""
    written = 0
    with open(path, "ab", buffering=0) as f:
        for step in (MIB, 4096, 1):
            try:
                while True:
                    written += f.write(b"\0" * step)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return written


async def test_a_really_full_filesystem_gives_507s_and_the_node_still_reads_and_deletes(
    small_ext4: Path, client: StorageClient
) -> None:
    runner, addr = await serve(small_ext4, StoreOptions(small_threshold=64 * 1024, block_size=4096, reserve_bytes=0))
    store = runner.app[STORE]
    filler = small_ext4 / "filler"
    try:
        small, big = os.urandom(10_000), os.urandom(MIB)
        await put(client, addr, "small", small)
        await put(client, addr, "big", Body(big))

        async def fills_the_disk_mid_body(data: bytes) -> AsyncIterator[bytes]:
            yield data[: 512 * 1024]
            fill(filler)  # someone else takes the rest of the disk
            yield data[512 * 1024 :]

        with pytest.raises(InsufficientStorage):  # a blob file: the real ENOSPC, mid-stream
            await client.put_blob(addr, "v2", 0, "b", "k", "replica:3", 2 * MIB,
                                  fills_the_disk_mid_body(os.urandom(2 * MIB)))
        assert store.index.get(BlobId("v2", 0)) is None and not list(small_ext4.rglob(".tmp-*"))
        with pytest.raises(InsufficientStorage):  # refused before the body: no space at all
            await put(client, addr, "v3", os.urandom(10_000))
        async with client.get_blob(addr, "small", 0) as blob:
            assert await blob.read() == small
        async with client.get_blob(addr, "big", 0) as blob:
            assert await blob.read() == big
        await client.delete_blob(addr, "small", 0)  # the tombstone fits (the spare file is given up if need be)
        await client.delete_blob(addr, "big", 0)
        assert len(store.index) == 0
        filler.unlink()
        await put(client, addr, "v4", Body(os.urandom(MIB)))  # room again
        await client.delete_blob(addr, "v4", 0)
        await store.close()  # waits for background work, such as setting the spare aside again
        assert (small_ext4 / "s1" / "spare-space").stat().st_size == 1024 * 1024
    finally:
        await runner.cleanup()
