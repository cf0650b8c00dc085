"""The blob store on a real temporary directory: durability, rebuild, torn tails, safety."""
from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import random
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest

from objstore.errors import CorruptBlob, IncompleteBody, InsufficientStorage, InternalError, InvalidArgument, NoSuchKey
from objstore.node.blob import BlobId
from objstore.node.reader import READ_CHUNK, read_blocks
from objstore.node import store as store_mod
from objstore.node.store import BlobStore, StoreOptions

OPTS = StoreOptions(small_threshold=2048, block_size=64, max_segment_bytes=4096, io_threads=2)


async def chunks(data: bytes, n: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), n):
        yield data[i : i + n]


async def put(store: BlobStore, vid: str, data: bytes, shard: int = 0, key: str = "k", bucket: str = "b") -> None:
    await store.put(BlobId(vid, shard), bucket, key, "replica:3", len(data), chunks(data))


async def read(store: BlobStore, vid: str, shard: int = 0, start=None, end=None) -> bytes:
    async with await store.open_read(BlobId(vid, shard), start, end) as r:
        return await r.read_all()


async def opened(path: Path, opts: StoreOptions = OPTS, **kw) -> BlobStore:
    s = BlobStore(str(path), opts, **kw)
    await s.open()
    return s


async def test_rebuilt_index_equals_live_index(tmp_path: Path) -> None:
    rng = random.Random(1)
    s = await opened(tmp_path)
    want: dict[str, bytes] = {}
    for i in range(60):
        vid = f"v{rng.randrange(30)}"
        op = rng.random()
        if op < 0.2 and vid in want:
            assert await s.delete(BlobId(vid, 0))
            del want[vid]
        else:
            data = rng.randbytes(rng.choice([0, 10, 64, 65, 700, 3000, 9000]))  # small and own-file blobs
            await put(s, vid, data, key=f"key-{vid}")
            want[vid] = data
    live = s.index.snapshot()
    stats = s.stats()
    assert stats["segments"] > 1  # rolled over at 4 KiB
    await s.close()
    s2 = await opened(tmp_path)
    try:
        assert s2.index.snapshot() == live
        assert s2.stats()["used_bytes"] == stats["used_bytes"]
        assert s2.index.live_bytes == sum(len(d) for d in want.values())
        for vid, data in want.items():
            assert await read(s2, vid) == data
            assert [e.header.version_id for e in s2.versions("b", f"key-{vid}")] == [vid]
        # superseded and deleted blob files are gone from disk
        files = {p.name for p in (tmp_path / "blobs").rglob("*.blob")}
        assert files == {Path(e.location.file).name for e in s2.index.entries() if e.in_own_file}
    finally:
        await s2.close()


async def test_tombstones_and_reput_honoured_after_rebuild(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    await put(s, "a", b"first")
    await put(s, "big", b"B" * 5000)
    assert await s.delete(BlobId("a", 0))
    assert await s.delete(BlobId("big", 0))
    assert not await s.delete(BlobId("never", 0))
    await put(s, "c", b"one")
    await s.delete(BlobId("c", 0))
    await put(s, "c", b"two")  # a re-PUT after the delete wins
    await s.close()
    s = await opened(tmp_path)
    try:
        for vid in ("a", "big"):
            with pytest.raises(NoSuchKey):
                await read(s, vid)
        assert await read(s, "c") == b"two"
        # c's tombstone lost to the re-PUT: memory keeps only tombstones that are newest
        assert s.stats()["blob_count"] == 1 and s.stats()["tombstones"] == 2
        assert list((tmp_path / "blobs").rglob("*.blob")) == []
    finally:
        await s.close()


async def test_torn_tail_cut_at_every_offset_and_never_served(tmp_path: Path) -> None:
    opts = StoreOptions(small_threshold=2048, block_size=16, io_threads=1)
    base = tmp_path / "base"
    s = await opened(base, opts)
    await put(s, "a", b"A" * 40)
    await put(s, "b", b"B" * 33)
    seg = base / s.index.get(BlobId("b", 0)).location.file
    good_end = seg.stat().st_size
    await put(s, "c", b"C" * 20)
    await s.close()
    full = seg.read_bytes()
    assert len(full) > good_end
    work = tmp_path / "work"
    for cut in range(good_end, len(full)):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        (work / seg.relative_to(base)).write_bytes(full[:cut])
        s = await opened(work, opts)
        try:
            assert await read(s, "a") == b"A" * 40
            assert await read(s, "b") == b"B" * 33
            with pytest.raises(NoSuchKey):
                await read(s, "c")
            assert (work / seg.relative_to(base)).stat().st_size == good_end, cut
            await put(s, "d", b"D" * 25)  # appends after the cut stay readable
            assert await read(s, "d") == b"D" * 25
        finally:
            await s.close()
        s = await opened(work, opts)
        try:
            assert await read(s, "d") == b"D" * 25 and s.index.get(BlobId("c", 0)) is None
        finally:
            await s.close()


async def test_unsynced_tail_with_bad_block_is_cut(tmp_path: Path) -> None:
    """A complete-looking last record whose data did not all reach the disk is cut too."""
    opts = StoreOptions(small_threshold=2048, block_size=16, io_threads=1)
    s = await opened(tmp_path, opts)
    await put(s, "a", b"A" * 40)
    await put(s, "c", b"C" * 40)
    loc = s.index.get(BlobId("c", 0)).location
    await s.close()
    seg = tmp_path / loc.file
    raw = bytearray(seg.read_bytes())
    raw[loc.data_offset + 20] = 0  # a lost page in the middle of the record
    seg.write_bytes(bytes(raw))
    s = await opened(tmp_path, opts)
    try:
        assert await read(s, "a") == b"A" * 40
        assert s.index.get(BlobId("c", 0)) is None
        assert seg.stat().st_size == loc.offset
    finally:
        await s.close()


async def test_damage_in_the_middle_skips_one_record_keeps_the_rest(tmp_path: Path) -> None:
    s = await opened(tmp_path, StoreOptions(small_threshold=2048, block_size=16))
    for vid in "abc":
        await put(s, vid, vid.encode() * 30)
    loc_b = s.index.get(BlobId("b", 0)).location
    await s.close()
    seg = tmp_path / loc_b.file
    raw = bytearray(seg.read_bytes())
    raw[loc_b.offset + 9] ^= 0xFF  # b's header
    seg.write_bytes(bytes(raw))
    s = await opened(tmp_path, StoreOptions(small_threshold=2048, block_size=16))
    try:
        assert await read(s, "a") == b"a" * 30
        assert await read(s, "c") == b"c" * 30
        assert s.index.get(BlobId("b", 0)) is None
        assert seg.stat().st_size == len(raw)  # nothing after the damage was cut
    finally:
        await s.close()


async def test_flipped_bit_on_disk_raises_corrupt_blob(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        data = bytes(range(200))
        await put(s, "a", data)
        loc = s.index.get(BlobId("a", 0)).location
        path = tmp_path / loc.file
        raw = bytearray(path.read_bytes())
        raw[loc.data_offset + 72 + 5] ^= 0x04  # block 1 (bytes 64..127)
        path.write_bytes(bytes(raw))
        with pytest.raises(CorruptBlob):
            await read(s, "a", 0, 70, 80)
        assert await read(s, "a", 0, 0, 63) == data[:64]  # block 0 is fine, and only it is read
        assert await read(s, "a", 0, 128, 199) == data[128:]
    finally:
        await s.close()


async def test_small_cached_reads_skip_the_io_pool_and_are_verified_all_the_same(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    import objstore.node.reader as reader_module

    s = await opened(tmp_path)
    try:
        data = bytes(range(200))
        await put(s, "a", data)
        assert await read(s, "a") == data  # the first read opens the segment's descriptor
        trips: list[object] = []
        pool_submit = s._io_pool.submit
        monkeypatch.setattr(s._io_pool, "submit", lambda *a, **k: (trips.append(a[0]), pool_submit(*a, **k))[1])
        assert await read(s, "a") == data
        assert await read(s, "a", 0, 70, 80) == data[70:81]
        assert trips == []  # served from the page cache on the loop
        loc = s.index.get(BlobId("a", 0)).location
        with open(tmp_path / loc.file, "r+b") as f:  # in place: the cached descriptor sees it
            f.seek(loc.data_offset + 72 + 5)
            f.write(bytes([data[64 + 5] ^ 0x04]))
        with pytest.raises(CorruptBlob):
            await read(s, "a", 0, 70, 80)
        assert trips == []
        assert await read(s, "a", 0, 0, 63) == data[:64]

        def not_cached(fd: int, n: int, offset: int) -> bytes:
            raise BlockingIOError("not cached")

        monkeypatch.setattr(reader_module, "pread_cached", not_cached)
        assert await read(s, "a", 0, 128, 199) == data[128:]
        assert trips  # bytes not in the page cache are read on the IO pool
    finally:
        await s.close()


async def test_cached_chunks_of_a_large_read_skip_the_io_pool_and_are_verified_all_the_same(
        tmp_path: Path, monkeypatch) -> None:
    import objstore.node.reader as reader_module

    s = await opened(tmp_path)
    try:
        data = random.Random(7).randbytes(100_000)  # its own file; groups of 512 blocks of 64 bytes
        await put(s, "big", data)
        assert await read(s, "big") == data  # now in the page cache
        trips: list[object] = []
        pool_submit = s._io_pool.submit
        monkeypatch.setattr(s._io_pool, "submit", lambda *a, **k: (trips.append(a[0]), pool_submit(*a, **k))[1])
        assert await read(s, "big") == data
        assert await read(s, "big", 0, 40_000, 99_000) == data[40_000:99_001]
        assert reader_module.read_block_data not in trips  # every chunk after the first read on the loop
        loc = s.index.get(BlobId("big", 0)).location
        bad = 1000  # a block in the third group
        with open(tmp_path / loc.file, "r+b") as f:  # in place: the page cache holds the change
            f.seek(loc.data_offset + bad * (64 + 8) + 3)
            f.write(bytes([data[bad * 64 + 3] ^ 0x10]))
        with pytest.raises(CorruptBlob):
            await read(s, "big")
        assert reader_module.read_block_data not in trips

        def not_cached(fd: int, buffers: list, offset: int) -> int:
            raise BlockingIOError("not cached")

        monkeypatch.setattr(reader_module, "preadv_cached", not_cached)
        assert await read(s, "big", 0, 0, 60_000) == data[:60_001]
        assert reader_module.read_block_data in trips  # chunks not in the page cache go to the IO pool
    finally:
        await s.close()


async def test_ranged_reads_through_the_store(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        for vid, size in (("small", 1000), ("large", 5000)):
            data = random.Random(size).randbytes(size)
            await put(s, vid, data)
            for start, end in ((0, 0), (63, 64), (64, 127), (1, size - 2), (size - 1, size + 50), (100, None)):
                want = data[start : (size if end is None else end + 1)]
                assert await read(s, vid, 0, start, end) == want, (vid, start, end)
    finally:
        await s.close()


async def test_a_streamed_read_hands_out_each_chunk_as_a_view_of_the_buffer_it_was_read_into(tmp_path: Path) -> None:
    # One preadv per chunk scatters block data into one buffer and checksums into another:
    # the chunk is that buffer (trimmed to the range), not a join of per-block copies.
    s = await opened(tmp_path, StoreOptions(small_threshold=2048, block_size=65536, io_threads=2))
    try:
        data = random.Random(7).randbytes(READ_CHUNK * 2 + 70_001)
        await put(s, "big", data)
        for start, end in ((None, None), (5, len(data) - 9), (READ_CHUNK - 1, READ_CHUNK + 1)):
            async with await s.open_read(BlobId("big", 0), start, end) as r:
                got = [c async for c in r.chunks()]
            assert all(isinstance(c, memoryview) and isinstance(c.obj, bytearray) for c in got)
            lo, hi = start or 0, len(data) - 1 if end is None else end
            assert b"".join(got) == data[lo: hi + 1]
            blocks = hi // 65536 - lo // 65536 + 1
            assert len(got) == -(-blocks // (READ_CHUNK // 65536))  # one view per 1 MiB of blocks
    finally:
        await s.close()


async def test_a_read_of_many_small_blocks_stays_within_the_systems_scatter_limit(tmp_path: Path) -> None:
    # 1 MiB of 64-byte blocks would be 32768 buffers for one preadv, past IOV_MAX (1024).
    s = await opened(tmp_path)
    try:
        data = random.Random(3).randbytes(300_000)
        await put(s, "many", data)
        assert await read(s, "many") == data
        assert await read(s, "many", 0, 1000, 250_000) == data[1000:250_001]
        entry = s.index.get(BlobId("many", 0))  # a whole-record check reads all 4688 blocks at once
        fd, release = s.record_fd(entry)
        try:
            assert read_blocks(fd, entry, 0, entry.header.n_blocks - 1, 0, len(data) - 1) == data
        finally:
            release()
    finally:
        await s.close()


async def test_a_flipped_bit_in_a_stored_block_checksum_raises_corrupt_blob(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        data = bytes(range(200))
        await put(s, "a", data)
        loc = s.index.get(BlobId("a", 0)).location
        path = tmp_path / loc.file
        raw = bytearray(path.read_bytes())
        raw[loc.data_offset + 2 * 72 + 64 + 3] ^= 0x10  # the checksum after block 2's data
        path.write_bytes(bytes(raw))
        with pytest.raises(CorruptBlob):
            await read(s, "a", 0, 150, 160)
        assert await read(s, "a", 0, 0, 127) == data[:128]
    finally:
        await s.close()


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "\x00../x", "../" * 341])
async def test_keys_never_reach_the_file_system(tmp_path: Path, key: str) -> None:
    data_dir = tmp_path / "node"
    s = await opened(data_dir)
    await put(s, "v1", b"x" * 100, key=key, bucket="../bucket")
    await put(s, "v2", b"y" * 5000, key=key, bucket="../bucket")
    await s.close()
    root = os.path.realpath(data_dir)
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        for name in dirnames + filenames:
            real = os.path.realpath(os.path.join(dirpath, name))
            assert real.startswith(root + os.sep) or real == root, real
            assert "passwd" not in name and "bucket" not in name
    s = await opened(data_dir)
    try:
        assert [e.header.version_id for e in s.versions("../bucket", key)] == ["v1", "v2"]
    finally:
        await s.close()


async def test_unsafe_version_ids_rejected(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        for vid in ("../x", "a/b", "", "x" * 200):
            with pytest.raises(InvalidArgument):
                await put(s, vid, b"data")
    finally:
        await s.close()


async def test_short_or_long_body_stores_nothing(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        for size in (100, 5000):
            with pytest.raises(IncompleteBody):
                await s.put(BlobId("v", 0), "b", "k", "replica:3", size, chunks(b"x" * (size - 1)))
            with pytest.raises(InvalidArgument):
                await s.put(BlobId("v", 0), "b", "k", "replica:3", size, chunks(b"x" * (size + 1)))
        assert len(s.index) == 0 and s.stats()["used_bytes"] == 0
        assert [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size and "blobs" in p.parts] == []
    finally:
        await s.close()


class FullAfterPartial:
    """os.write that, while ``full``, writes 8 bytes of a buffer and then fails with ENOSPC."""

    def __init__(self) -> None:
        self.full = False

    def write(self, fd: int, data: bytes) -> int:
        if self.full:
            if len(data) > 8:
                return os.write(fd, bytes(data[:8]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


async def test_enospc_fails_cleanly_and_leaves_no_partial_record(tmp_path: Path) -> None:
    disk = FullAfterPartial()
    s = await opened(tmp_path, write=disk.write)
    await put(s, "a", b"A" * 100)
    seg = tmp_path / s.index.get(BlobId("a", 0)).location.file
    size_before = seg.stat().st_size
    disk.full = True
    with pytest.raises(InsufficientStorage, match="no space"):
        await put(s, "b", b"B" * 100)
    with pytest.raises(InsufficientStorage, match="no space"):  # even with the spare given up
        await s.delete(BlobId("a", 0))
    assert s.index.get(BlobId("b", 0)) is None and seg.stat().st_size == size_before
    disk.full = False
    await put(s, "c", b"C" * 100)
    assert await read(s, "a") == b"A" * 100 and await read(s, "c") == b"C" * 100
    await s.close()
    s = await opened(tmp_path)
    try:
        assert sorted(b.version_id for b in s.index.snapshot()) == ["a", "c"]
    finally:
        await s.close()


async def test_configured_capacity_refuses_writes_beyond_it(tmp_path: Path) -> None:
    s = await opened(tmp_path, StoreOptions(capacity_bytes=1000))
    try:
        await put(s, "a", b"x" * 500)
        with pytest.raises(InsufficientStorage, match="full"):
            await put(s, "b", b"x" * 600)
        assert s.capacity_bytes() == 1000 and s.stats()["blob_count"] == 1
    finally:
        await s.close()


async def test_space_reports_capacity_used_free_and_the_default_reserve(tmp_path: Path) -> None:
    s = await opened(tmp_path, StoreOptions(capacity_bytes=100_000))
    try:
        await put(s, "a", b"x" * 5000)
        sp = s.space()
        assert sp["capacity_bytes"] == 100_000 and sp["reserve_bytes"] == 5000  # 5% of the capacity
        assert sp["used_bytes"] == s.used_bytes > 5000
        assert sp["free_bytes"] == 100_000 - sp["used_bytes"]
        assert {k: s.stats()[k] for k in sp} == sp
    finally:
        await s.close()
    s = await opened(tmp_path, StoreOptions())  # no capacity given: the real filesystem
    try:
        fs = shutil.disk_usage(tmp_path)
        sp = s.space()
        assert sp["capacity_bytes"] == fs.total
        assert sp["reserve_bytes"] == min(fs.total // 20, 1024**3)
        assert abs(sp["free_bytes"] - fs.free) < 64 * 1024 * 1024  # other writers share the disk
    finally:
        await s.close()


async def test_a_write_that_would_eat_into_the_reserve_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    s = await opened(tmp_path, StoreOptions(capacity_bytes=20_000, reserve_bytes=4000))
    read_from: list[int] = []

    async def body(n: int) -> AsyncIterator[bytes]:
        read_from.append(n)
        yield b"y" * n

    try:
        await s.put(BlobId("a", 0), "b", "k", "replica:3", 10_000, body(10_000))
        free = s.space()["free_bytes"]
        assert 4000 < free < 10_000
        with pytest.raises(InsufficientStorage):
            await s.put(BlobId("b", 0), "b", "k", "replica:3", free - 3000, body(free - 3000))
        assert read_from == [10_000]  # the refused body was never read
        assert s.index.get(BlobId("b", 0)) is None
        await s.delete(BlobId("a", 0))  # a tombstone needs no admission
        assert s.index.get(BlobId("a", 0)) is None
    finally:
        await s.close()


class FakeDisk:
    """``shutil.disk_usage`` of a filesystem with ``free`` bytes less what the store on it
    uses (``used``, set once the store is open); counts the calls."""

    def __init__(self, free: int, total: int = 1 << 40) -> None:
        self.free, self.total, self.calls = free, total, 0
        self.used = lambda: 0

    def __call__(self, path: str):  # noqa: ANN204 - shutil.disk_usage's named tuple
        self.calls += 1
        free = self.free - self.used()
        return shutil._ntuple_diskusage(self.total, self.total - free, free)  # type: ignore[attr-defined]


async def test_admission_reuses_a_recent_statfs_while_it_leaves_the_slack(tmp_path: Path, monkeypatch) -> None:
    from objstore.node import store as store_mod

    disk = FakeDisk(free=10 * store_mod.SPACE_SAMPLE_SLACK)
    monkeypatch.setattr(store_mod.shutil, "disk_usage", disk)
    clock = [1000.0]
    monkeypatch.setattr(store_mod, "_monotonic", lambda: clock[0])
    s = await opened(tmp_path, StoreOptions(reserve_bytes=1000))
    try:
        disk.calls = 0
        for i in range(20):
            await put(s, f"v{i}", b"x" * 500)
            clock[0] += store_mod.SPACE_SAMPLE_SECONDS / 40
        assert disk.calls == 1  # one sample for all twenty writes, not a statfs each
        clock[0] += store_mod.SPACE_SAMPLE_SECONDS / 2 + 0.01  # the first sample is now over a second old
        await put(s, "late", b"x" * 500)
        assert disk.calls == 2  # the sample aged out: a fresh one
    finally:
        await s.close()


async def test_near_the_reserve_every_admission_takes_a_fresh_statfs_and_refuses_on_it(tmp_path: Path,
                                                                                           monkeypatch) -> None:
    from objstore.node import store as store_mod

    reserve, slack = 1000, store_mod.SPACE_SAMPLE_SLACK
    disk = FakeDisk(free=0)
    monkeypatch.setattr(store_mod.shutil, "disk_usage", disk)
    monkeypatch.setattr(store_mod, "_monotonic", lambda: 1000.0)  # the sample never ages out here
    s = await opened(tmp_path, StoreOptions(reserve_bytes=reserve))
    try:
        disk.used = lambda: s.used_bytes
        disk.free = reserve + slack + 20_000 + s.used_bytes
        disk.calls = 0
        await put(s, "a", b"x" * 500)
        assert disk.calls == 1  # no sample yet
        await put(s, "b", b"x" * 15_000)
        assert disk.calls == 1  # the sample, less the 500 bytes written since, leaves the slack
        await put(s, "c", b"x" * 5000)
        assert disk.calls == 2  # less what was written since, it would not: a fresh sample
        await put(s, "d", b"x" * 500)
        assert disk.calls == 3  # within the slack: every write takes a fresh one
        disk.free -= slack  # another writer filled the disk meanwhile
        with pytest.raises(InsufficientStorage):
            await put(s, "e", b"x" * 500)
        assert disk.calls == 4 and s.index.get(BlobId("e", 0)) is None
    finally:
        await s.close()


async def test_the_sample_counts_what_was_written_since_even_after_space_was_given_back(tmp_path: Path,
                                                                                         monkeypatch) -> None:
    # A delete drops a blob file from the node's used bytes at once, but the filesystem
    # frees it only once the unlink is done (or its last reader closes it): writes made
    # meanwhile still take space, and the sample must count them.
    from objstore.node import store as store_mod

    reserve, slack = 5000, 10_000
    monkeypatch.setattr(store_mod, "SPACE_SAMPLE_SLACK", slack)
    disk = FakeDisk(free=0)
    monkeypatch.setattr(store_mod.shutil, "disk_usage", disk)
    monkeypatch.setattr(store_mod, "_monotonic", lambda: 1000.0)  # the sample never ages out here
    s = await opened(tmp_path, StoreOptions(reserve_bytes=reserve, small_threshold=2048, block_size=4096))
    try:
        disk.free = 1 << 30
        await put(s, "big", b"x" * 100_000)  # a file of its own
        held = [0]  # bytes deleted by this node that the filesystem has not freed yet
        disk.used = lambda: s.used_bytes + held[0]
        disk.free = reserve + slack + 30_000 + s.used_bytes
        s.space()  # the sample: 45_000 bytes free
        before = s.used_bytes
        assert await s.delete(BlobId("big", 0))
        held[0] = before - s.used_bytes
        assert held[0] >= 100_000
        await put(s, "a", b"x" * 20_000)  # about 24_000 left: the reserve and the slack spare
        with pytest.raises(InsufficientStorage):  # would leave about 4_000: into the reserve
            await put(s, "b", b"x" * 20_000)
        assert s.index.get(BlobId("b", 0)) is None
    finally:
        await s.close()


async def test_writes_in_flight_count_against_the_free_space(tmp_path: Path) -> None:
    s = await opened(tmp_path, StoreOptions(capacity_bytes=100_000, reserve_bytes=0, small_threshold=2048))
    gate = asyncio.Event()

    async def held(n: int) -> AsyncIterator[bytes]:
        await gate.wait()
        yield b"z" * n

    try:
        first = asyncio.create_task(s.put(BlobId("a", 0), "b", "k", "replica:3", 60_000, held(60_000)))
        await asyncio.sleep(0.05)
        assert s.space()["free_bytes"] < 40_000
        with pytest.raises(InsufficientStorage):
            await s.put(BlobId("b", 0), "b", "k", "replica:3", 50_000, held(50_000))
        gate.set()
        await first
        assert s.space()["free_bytes"] == 100_000 - s.used_bytes
    finally:
        await s.close()


class FullUntilSpareFreed:
    """os.write failing with ENOSPC while the store's spare file still holds its bytes."""

    def __init__(self, data_dir: Path) -> None:
        self.spare = data_dir / "spare-space"
        self.full = False

    def write(self, fd: int, data: bytes) -> int:
        if self.full and self.spare.stat().st_size > 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data)


async def test_a_delete_on_a_full_disk_gives_up_the_spare_space_and_succeeds(tmp_path: Path) -> None:
    disk = FullUntilSpareFreed(tmp_path)
    s = await opened(tmp_path, write=disk.write)
    try:
        await put(s, "a", b"A" * 100)
        assert disk.spare.stat().st_size == 1024 * 1024
        disk.full = True
        with pytest.raises(InsufficientStorage):
            await put(s, "b", b"B" * 100)
        await s.delete(BlobId("a", 0))  # its tombstone could only be written once the spare was freed
        assert s.index.get(BlobId("a", 0)) is None
    finally:
        await s.close()
    assert disk.spare.stat().st_size == 1024 * 1024  # set aside again after the delete


async def test_concurrent_small_writes_share_fsyncs(tmp_path: Path) -> None:
    s = await opened(tmp_path, StoreOptions())
    try:
        await asyncio.gather(*(put(s, f"v{i}", os.urandom(300)) for i in range(300)))
        st = s.stats()
        assert st["blob_count"] == 300 and st["group_committed_records"] == 300
        assert st["fsyncs"] <= 30, st
    finally:
        await s.close()


async def test_temporary_files_removed_and_bad_blob_files_set_aside(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    await put(s, "big", b"z" * 5000)
    path = tmp_path / s.index.get(BlobId("big", 0)).location.file
    await s.close()
    (path.parent / ".tmp-leftover").write_bytes(b"partial")
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 1  # the footer
    path.write_bytes(bytes(raw))
    s = await opened(tmp_path)
    try:
        assert s.index.get(BlobId("big", 0)) is None
        assert not (path.parent / ".tmp-leftover").exists()
        assert Path(str(path) + ".bad").exists()
    finally:
        await s.close()


async def test_data_dir_is_locked_against_a_second_store(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        with pytest.raises(InvalidArgument, match="in use"):
            await opened(tmp_path)
    finally:
        await s.close()


@pytest.mark.parametrize("direct_io", [True, False])
async def test_large_blobs_read_back_and_rebuild_with_or_without_direct_io(tmp_path: Path, direct_io: bool) -> None:
    """Large blob files written with O_DIRECT (where the filesystem allows) or through the
    page cache are the same records: read back whole and ranged, and rebuilt on reopen."""
    opts = StoreOptions(small_threshold=2048, block_size=4096, write_buffer=4 * 4096, io_threads=2, direct_io=direct_io)
    rng = random.Random(7)
    blobs = {f"v{n}": rng.randbytes(n) for n in (2049, 4096 * 4, 4096 * 4 + 1, 100_003, 300_000)}
    s = await opened(tmp_path, opts)
    try:
        for vid, data in blobs.items():
            await s.put(BlobId(vid, 0), "b", "k", "replica:3", len(data), chunks(data, 7000))
            assert await read(s, vid) == data and await read(s, vid, 0, 1000, 9000) == data[1000:9001]
    finally:
        await s.close()
    s = await opened(tmp_path, opts)
    try:
        for vid, data in blobs.items():
            assert await read(s, vid) == data
    finally:
        await s.close()


async def test_a_direct_write_the_filesystem_refuses_goes_on_through_the_page_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EINVAL on an O_DIRECT write (alignment the filesystem does not take) switches the
    file to buffered writes; the blob is stored whole."""
    from objstore.node import blobfiles

    real_write, refused = os.write, []

    def write(fd: int, data: bytes) -> int:
        if os.get_blocking(fd) and fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(blobfiles.os, "write", write)
    data = random.Random(3).randbytes(200_000)
    s = await opened(tmp_path, StoreOptions(small_threshold=2048, block_size=4096, write_buffer=4 * 4096))
    try:
        await put(s, "v", data)
        assert await read(s, "v") == data
    finally:
        await s.close()
    probe = blobfiles.BlobFileWriter(str(tmp_path), "probe", direct=True)
    probe.abort()
    if not probe.direct:
        pytest.skip("this filesystem takes no O_DIRECT writes")
    assert len(refused) == 1  # refused once: the file went on buffered


async def test_large_writes_reuse_their_framer_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large write lays its blob out in the buffer pair a finished write gave back (no new
    memory maps), writes at once get pairs of their own, and a failed write gives its pair
    back too; every blob reads back whole."""
    import mmap

    real_mmap, mapped = mmap.mmap, []

    def counting_mmap(*args: object, **kwargs: object) -> mmap.mmap:
        mapped.append(args)
        return real_mmap(*args, **kwargs)

    monkeypatch.setattr(mmap, "mmap", counting_mmap)
    opts = StoreOptions(small_threshold=2048, block_size=4096, write_buffer=4 * 4096, io_threads=2)
    rng = random.Random(11)
    blobs = {f"v{i}": rng.randbytes(rng.randint(3000, 90_000)) for i in range(8)}
    s = await opened(tmp_path, opts)
    try:
        for vid in ("v0", "v1", "v2"):
            await put(s, vid, blobs[vid])
        assert len(mapped) == 2  # one pair, reused by the second and third write
        await asyncio.gather(*(put(s, vid, blobs[vid]) for vid in ("v3", "v4", "v5")))
        assert len(mapped) == 6  # writes at once never share a pair: two more pairs
        with pytest.raises(IncompleteBody):
            await s.put(BlobId("v6", 0), "b", "k", "replica:3", 50_000, chunks(b"x" * 49_999))
        for vid in ("v6", "v7"):
            await put(s, vid, blobs[vid])
        assert len(mapped) == 6  # the failed write gave its pair back as well
        for vid, data in blobs.items():
            assert await read(s, vid) == data
    finally:
        await s.close()


async def test_a_write_cancelled_while_its_buffer_is_written_drops_the_pair(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write cancelled while the IO pool still writes one of its buffers does not give the
    pair back (its thread still reads it); the next write maps a pair of its own."""
    import threading

    from objstore.node import blobfiles

    real_write, entered, proceed = blobfiles.BlobFileWriter.write, threading.Event(), threading.Event()

    def slow_write(self: blobfiles.BlobFileWriter, data: bytes | memoryview) -> None:
        entered.set()
        proceed.wait(10)
        real_write(self, data)

    opts = StoreOptions(small_threshold=2048, block_size=4096, write_buffer=4 * 4096, io_threads=2)
    data = random.Random(5).randbytes(60_000)
    s = await opened(tmp_path, opts)
    try:
        monkeypatch.setattr(blobfiles.BlobFileWriter, "write", slow_write)
        task = asyncio.ensure_future(put(s, "v1", data))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the put now waits for that write
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sum(len(p) for p in s._framer_pools.values()) == 0  # the pair was not given back
        proceed.set()
        monkeypatch.setattr(blobfiles.BlobFileWriter, "write", real_write)
        await put(s, "v2", data)
        assert await read(s, "v2") == data
        assert sum(len(p) for p in s._framer_pools.values()) == 1
    finally:
        proceed.set()
        await s.close()


async def test_a_write_cancelled_while_its_buffer_is_written_keeps_its_file_open_until_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write cancelled while the IO pool still writes one of its buffers closes and
    removes its temporary file only once that write returned: the thread is still using the
    descriptor (a retried short write), which a close could hand to another file meanwhile."""
    import threading

    from objstore.node import blobfiles

    real_write, entered, proceed = blobfiles.BlobFileWriter.write, threading.Event(), threading.Event()
    seen: list[tuple[int, str]] = []  # (descriptor when the write ended, temporary file)

    def slow_write(self: blobfiles.BlobFileWriter, data: bytes | memoryview) -> None:
        entered.set()
        proceed.wait(10)
        seen.append((self._fd, self.tmp_path))
        real_write(self, data)

    opts = StoreOptions(small_threshold=2048, block_size=4096, write_buffer=4 * 4096, io_threads=2)
    data = random.Random(6).randbytes(60_000)
    s = await opened(tmp_path, opts)
    try:
        monkeypatch.setattr(blobfiles.BlobFileWriter, "write", slow_write)
        task = asyncio.ensure_future(put(s, "v1", data))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the put now waits for that write
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proceed.set()
        for _ in range(200):
            if seen and not os.path.exists(seen[0][1]):
                break
            await asyncio.sleep(0.01)
        fd, tmp = seen[0]
        assert fd >= 0  # the file was still open when its write went on
        assert not os.path.exists(tmp)  # and removed once the write was done
        monkeypatch.setattr(blobfiles.BlobFileWriter, "write", real_write)
        await put(s, "v2", data)
        assert await read(s, "v2") == data
    finally:
        proceed.set()
        await s.close()


async def test_a_write_cancelled_while_its_file_is_being_created_closes_and_removes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large write cancelled while the IO pool creates its temporary file closes and
    removes that file once it exists (its descriptor is not left open for the process's life)."""
    import threading

    from objstore.node import blobfiles, store as store_mod

    real_init, entered, proceed = blobfiles.BlobFileWriter.__init__, threading.Event(), threading.Event()
    made: list[blobfiles.BlobFileWriter] = []

    def slow_init(self: blobfiles.BlobFileWriter, *args: object, **kw: object) -> None:
        entered.set()
        proceed.wait(10)
        real_init(self, *args, **kw)
        made.append(self)

    class SlowWriter(blobfiles.BlobFileWriter):
        __init__ = slow_init  # type: ignore[assignment]

    opts = StoreOptions(small_threshold=2048, block_size=4096, write_buffer=4 * 4096, io_threads=2)
    data = random.Random(7).randbytes(60_000)
    s = await opened(tmp_path, opts)
    try:
        monkeypatch.setattr(store_mod, "BlobFileWriter", SlowWriter)
        task = asyncio.ensure_future(put(s, "v1", data))
        while not entered.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        proceed.set()
        for _ in range(200):
            if made and made[0]._fd < 0:
                break
            await asyncio.sleep(0.01)
        assert made and made[0]._fd < 0  # closed
        assert not os.path.exists(made[0].tmp_path)  # and removed
    finally:
        proceed.set()
        await s.close()


async def test_a_read_closed_while_a_group_is_read_keeps_its_descriptor_until_that_read_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large GET whose sender goes away while the IO pool reads its next group releases the
    blob file's descriptor only once that read returned: closing it under the thread could
    hand the number to another file the thread would then read."""
    import threading

    from objstore.node import reader

    s = await opened(tmp_path, StoreOptions(small_threshold=2048, block_size=65536, io_threads=2))
    real, entered, proceed = reader.read_block_data, threading.Event(), threading.Event()
    fds_at_end: list[bool] = []  # whether the descriptor was still open when the slow read ended

    def slow(fd: int, *args, **kw):
        entered.set()
        proceed.wait(10)
        try:
            os.fstat(fd)
            fds_at_end.append(True)
        except OSError:
            fds_at_end.append(False)
        return real(fd, *args, **kw)

    try:
        data = random.Random(8).randbytes(READ_CHUNK * 3)
        await put(s, "big", data)
        r = await s.open_read(BlobId("big", 0))
        gen = r.chunks()
        assert bytes(await gen.__anext__()) == data[:READ_CHUNK]  # the first group, primed
        monkeypatch.setattr(reader, "CACHED_CHUNKS", False)  # the next group goes to the IO pool
        monkeypatch.setattr(reader, "read_block_data", slow)
        task = asyncio.ensure_future(gen.__anext__())
        while not entered.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r.close()  # as the handler's `async with` does when the sender is cancelled
        proceed.set()
        for _ in range(200):
            if fds_at_end:
                break
            await asyncio.sleep(0.01)
        assert fds_at_end == [True]
        await asyncio.sleep(0.05)
        monkeypatch.setattr(reader, "read_block_data", real)
        assert await read(s, "big") == data
    finally:
        proceed.set()
        await s.close()


async def test_put_many_stores_each_blob_in_one_group_commit_and_refuses_only_the_bad_ones(tmp_path: Path) -> None:
    from objstore.errors import ObjstoreError
    s = await opened(tmp_path)
    try:
        small = [os.urandom(n) for n in (0, 100, 2048)]
        large = os.urandom(5000)  # over small_threshold: a blob file of its own
        batches = s.stats()["fsyncs"]
        out = await s.put_many([
            (BlobId("a", 0), "b", "k", "replica:3", small[0]),
            (BlobId("b", 1), "b", "k", "replica:3", memoryview(small[1])),
            (BlobId("c", 0), "b", "k", "no-such-policy", b"x"),
            (BlobId("d", 0), "b", "k", "replica:3", large),
            (BlobId("e", 0), "b", "k", "replica:3", small[2]),
        ])
        assert isinstance(out[2], InvalidArgument)
        assert not any(isinstance(r, ObjstoreError) for i, r in enumerate(out) if i != 2)
        assert [r.size for i, r in enumerate(out) if i != 2] == [0, 100, 5000, 2048]
        assert s.stats()["fsyncs"] - batches == 1  # the small ones in one group commit
        assert await read(s, "a") == small[0] and await read(s, "b", 1) == small[1]
        assert await read(s, "d") == large and await read(s, "e") == small[2]
        with pytest.raises(NoSuchKey):
            s.head(BlobId("c", 0))
    finally:
        await s.close()
    s = await opened(tmp_path)  # durable: found again after a reopen
    try:
        assert await read(s, "b", 1) == small[1] and await read(s, "e") == small[2]
    finally:
        await s.close()


async def test_put_many_on_a_full_node_refuses_each_blob_with_insufficient_storage(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        s.space = lambda: {"capacity_bytes": 1000, "used_bytes": 1000, "free_bytes": 0,  # type: ignore[method-assign]
                           "reserve_bytes": 0}
        out = await s.put_many([(BlobId("a", 0), "b", "k", "replica:3", b"x" * 10),
                                (BlobId("b", 0), "b", "k", "replica:3", b"y" * 5000)])
        assert [type(r) for r in out] == [InsufficientStorage, InsufficientStorage]
        assert s.stats()["blob_count"] == 0 and s._admitted == 0
    finally:
        await s.close()


async def test_a_small_cached_read_takes_its_header_and_blocks_in_one_preadv(tmp_path: Path, monkeypatch) -> None:
    import objstore.node.reader as reader_module

    s = await opened(tmp_path)
    try:
        data = bytes(range(200))
        await put(s, "a", data)
        assert await read(s, "a") == data  # opens the segment's descriptor
        calls: list[str] = []
        pread, preadv = reader_module.pread_cached, reader_module.preadv_cached
        monkeypatch.setattr(reader_module, "pread_cached", lambda *a: (calls.append("pread"), pread(*a))[1])
        monkeypatch.setattr(reader_module, "preadv_cached", lambda *a: (calls.append("preadv"), preadv(*a))[1])
        assert await read(s, "a", 0, 0, 150) == data[:151]
        assert calls == ["preadv"]
        calls.clear()
        assert await read(s, "a", 0, 70, 150) == data[70:151]  # not from the first block: header on its own
        assert calls == ["pread", "preadv"]
    finally:
        await s.close()


@pytest.mark.parametrize("start", [0, 70])  # the header read with the first blocks, or on its own
async def test_a_read_whose_header_on_disk_names_another_blob_is_refused(tmp_path: Path, start: int) -> None:
    """A record replaced in place by another blob's record of the same length (as a cached
    descriptor of a reused file would show): its header is valid but not the index's."""
    s = await opened(tmp_path)
    try:
        await put(s, "a", bytes(200))
        await put(s, "b", bytes(200))  # same lengths: "b"'s record fits exactly over "a"'s
        assert await read(s, "a") == bytes(200)
        la, lb = s.index.get(BlobId("a", 0)).location, s.index.get(BlobId("b", 0)).location
        assert (la.file, la.header_len, la.length) == (lb.file, lb.header_len, lb.length)
        path = tmp_path / la.file
        raw = bytearray(path.read_bytes())
        raw[la.offset: la.offset + la.length] = raw[lb.offset: lb.offset + lb.length]
        with open(path, "r+b") as f:  # in place: the cached descriptor sees it
            f.write(raw)
        with pytest.raises(CorruptBlob, match="header"):
            await read(s, "a", 0, start, 150)
        assert await read(s, "b", 0, start, 150) == bytes(200)[start:151]
    finally:
        await s.close()


async def test_a_short_record_is_refused_when_its_header_is_read_with_its_blocks(tmp_path: Path) -> None:
    s = await opened(tmp_path)
    try:
        await put(s, "a", bytes(range(100)))
        loc = s.index.get(BlobId("a", 0)).location
        with open(tmp_path / loc.file, "r+b") as f:
            f.truncate(loc.offset + loc.header_len + 10)  # the header whole, the first block cut
        with pytest.raises(CorruptBlob, match="truncated"):
            await read(s, "a", 0, 0, 50)
        with open(tmp_path / loc.file, "r+b") as f:
            f.truncate(loc.offset + 5)  # the header cut
        with pytest.raises(CorruptBlob, match="header"):
            await read(s, "a", 0, 0, 50)
    finally:
        await s.close()


async def test_a_cached_segment_read_of_up_to_256_kib_skips_the_io_pool(tmp_path: Path, monkeypatch) -> None:
    s = await opened(tmp_path, StoreOptions(io_threads=2))  # default sizes: 1 MiB blobs go to segments
    try:
        data = random.Random(3).randbytes(256 * 1024)
        await put(s, "a", data)
        assert not s.index.get(BlobId("a", 0)).in_own_file
        assert await read(s, "a") == data  # opens the descriptor; the bytes are in the page cache
        trips: list[object] = []
        pool_submit = s._io_pool.submit
        monkeypatch.setattr(s._io_pool, "submit", lambda *a, **k: (trips.append(a[0]), pool_submit(*a, **k))[1])
        loop = asyncio.get_running_loop()
        run_in_executor = loop.run_in_executor
        monkeypatch.setattr(loop, "run_in_executor", lambda *a: (trips.append(a[1]), run_in_executor(*a))[1])
        assert await read(s, "a", 0, 0, 256 * 1024 - 1) == data
        assert await read(s, "a", 0, 100_000, 200_000) == data[100_000:200_001]
        assert trips == []
    finally:
        await s.close()


async def test_put_many_split_over_two_group_commits_reports_each_blob_by_its_own_commit(tmp_path: Path) -> None:
    """A batch's small blobs span two group commits (the committer's batch bound) and the
    second fails (a disk error): the blobs of the first are durable and reported stored,
    those of the second fail alone, instead of every blob failed (the durable ones left
    behind as orphans while the gateway counts them lost)."""
    s = await opened(tmp_path)
    try:
        assert s._committer is not None
        s._committer._max_records = 2  # two records per group commit
        real = s._segments.append_batch
        calls = [0]

        def append_batch(records, next_seq):  # noqa: ANN001, ANN202
            calls[0] += 1
            if calls[0] == 2:
                raise OSError(5, "Input/output error")
            return real(records, next_seq)

        s._segments.append_batch = append_batch  # type: ignore[method-assign]
        data = [os.urandom(100) for _ in range(4)]
        out = await s.put_many([(BlobId(f"v{i}", 0), "b", f"k{i}", "replica:3", d) for i, d in enumerate(data)])
        assert calls[0] == 2
        assert [r.size for r in out[:2]] == [100, 100]
        assert all(isinstance(r, InternalError) and r.status == 500 for r in out[2:]), out
        assert await read(s, "v0") == data[0] and await read(s, "v1") == data[1]
        for i in (2, 3):
            with pytest.raises(NoSuchKey):
                s.head(BlobId(f"v{i}", 0))
        assert s._admitted == 0
    finally:
        await s.close()


async def test_put_bytes_checks_and_stores_as_the_streamed_put_does(tmp_path: Path) -> None:
    from objstore.errors import ObjstoreError

    async def outcome(s: BlobStore, whole: bool, vid: str, data: bytes, policy: str = "replica:3",
                      key: str = "k") -> object:
        try:
            if whole:
                return await s.put_bytes(BlobId(vid, 0), "b", key, policy, data)
            return await s.put(BlobId(vid, 0), "b", key, policy, len(data), chunks(data))
        except ObjstoreError as exc:
            return type(exc).__name__, exc.code

    disks = {False: FullAfterPartial(), True: FullAfterPartial()}
    stores = {whole: await opened(tmp_path / str(whole), StoreOptions(small_threshold=2048, block_size=64,
                                                                       capacity_bytes=50_000, reserve_bytes=0),
                                  clock=lambda: 1234.5, write=disks[whole].write)
              for whole in (False, True)}
    try:
        cases = [("a", b"A" * 100, "replica:3", "k"), ("e", b"", "replica:3", "k"),
                 ("big", b"B" * 5000, "ec:2+1", "k"), ("bad", b"x", "replica:0", "k"),
                 ("bad2", b"x", "nonsense", "k"), ("long", b"x", "replica:3", "k" * 5000),
                 ("full", b"F" * 60_000, "replica:3", "k")]
        for vid, data, policy, key in cases:
            got = [await outcome(stores[w], w, vid, data, policy, key) for w in (False, True)]
            assert got[0] == got[1], vid
            assert isinstance(got[0], tuple) == (vid in ("bad", "bad2", "long", "full")), (vid, got[0])
        for whole in (False, True):
            disks[whole].full = True
        got = [await outcome(stores[w], w, "enospc", b"N" * 100) for w in (False, True)]
        assert got[0] == got[1] == ("InsufficientStorage", "InsufficientStorage")
        for whole in (False, True):
            disks[whole].full = False
            assert stores[whole].index.get(BlobId("enospc", 0)) is None
        for vid in ("a", "e", "big"):
            assert await read(stores[False], vid) == await read(stores[True], vid)
    finally:
        for s in stores.values():
            await s.close()
    on_disk = [sorted((p.relative_to(tmp_path / str(w)).as_posix(), p.read_bytes())
                      for p in (tmp_path / str(w)).rglob("*") if p.is_file() and p.parent.name != str(w) and p.name != "LOCK")
               for w in (False, True)]
    assert on_disk[0] == on_disk[1] and len(on_disk[0]) == 2  # the segment and the large blob's file


async def test_shard_layouts_naming_their_object_size_do_not_crowd_out_the_policies_kept(tmp_path: Path) -> None:
    """Policy strings are validated once each (a bounded set); a shard's layout names its
    object's size, one string per size, so those are validated each time and not kept:
    an ec-heavy load leaves the cluster's few policies in the set."""
    s = await opened(tmp_path)
    try:
        await put(s, "r0", b"replica")
        for i in range(2 * store_mod.MAX_KNOWN_POLICIES):
            data = b"s" * (i + 1)
            await s.put(BlobId(f"e{i}", 0), "b", "k", f"ec:4+2;stripe=1048576;size={4 * (i + 1)}", len(data), chunks(data))
        assert s._known_policies == {"replica:3"}
        with pytest.raises(InvalidArgument):
            await s.put(BlobId("bad", 0), "b", "k", "ec:4+2;stripe=1048576;size=x", 1, chunks(b"x"))
    finally:
        await s.close()
