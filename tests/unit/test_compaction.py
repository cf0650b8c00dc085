"""Segment compaction on a real temporary directory: space comes back, nothing is lost, no
deleted blob comes back, and a "crash" at every step leaves a store that rebuilds right."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from objstore.errors import NoSuchKey
from objstore.node.blob import BlobId
from objstore.node.compaction import Compactor, CrashPoint
from objstore.node.segments import SEGMENT_DIR, segment_name
from objstore.node.store import BlobStore, StoreOptions
from tests.unit.test_store import opened, put, read

OPTS = StoreOptions(small_threshold=2048, block_size=256, max_segment_bytes=8192, io_threads=2,
                    max_open_readers=4)


async def workload(store: BlobStore, seed: int, ops: int = 400) -> dict[str, bytes]:
    """Puts, re-puts and deletes of a few ids plus many one-off ids; returns what is live."""
    rng = random.Random(seed)
    want: dict[str, bytes] = {}
    for i in range(ops):
        r = rng.random()
        vid = f"hot{rng.randrange(6)}" if r < 0.6 else f"cold{i}"
        if r < 0.15 and want:
            gone = rng.choice(sorted(want))
            assert await store.delete(BlobId(gone, 0))
            del want[gone]
            continue
        data = rng.randbytes(rng.choice([0, 40, 300, 900, 1500, 3000]))  # 3000: a blob file
        await put(store, vid, data, key=f"key-{vid}")
        want[vid] = data
    return want


async def check(store: BlobStore, want: dict[str, bytes], gone: set[str]) -> None:
    for vid, data in want.items():
        assert await read(store, vid) == data, vid
    for vid in gone - set(want):
        with pytest.raises(NoSuchKey):
            await read(store, vid)


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix in (".dat", ".blob"))


def all_ids(seed: int, ops: int = 400) -> set[str]:
    return {f"hot{i}" for i in range(6)} | {f"cold{i}" for i in range(ops)}


async def test_compaction_reclaims_space_and_keeps_every_live_blob(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    want = await workload(s, seed=1)
    before = disk_bytes(tmp_path)
    comp = Compactor(s, threshold=0.5, rate=0)
    reclaimed = await comp.compact_once()
    after = disk_bytes(tmp_path)
    assert reclaimed > 0 and after == before - reclaimed
    live_records = sum(e.location.length for e in s.index.entries())
    assert after <= 2 * live_records + OPTS.max_segment_bytes, (before, after, live_records)
    await check(s, want, all_ids(1))
    live = s.index.snapshot()
    await s.close()
    s = await opened(tmp_path, OPTS)
    try:
        assert s.index.snapshot().keys() == live.keys()
        await check(s, want, all_ids(1))
    finally:
        await s.close()


async def test_a_tombstone_is_kept_while_an_older_record_remains_elsewhere(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    await put(s, "victim", b"v" * 1000)  # segment 1
    for i in range(12):
        await put(s, f"fill{i}", b"f" * 1000)  # rolls into segment 2
    assert await s.delete(BlobId("victim", 0))  # the tombstone, in a later segment
    for i in range(12):
        await put(s, f"more{i}", b"m" * 1000)
    tomb = s.index.tombstone(BlobId("victim", 0))
    assert tomb is not None and tomb.location.file != segment_name(1)
    comp = Compactor(s, rate=0)
    tomb_seg = int(tomb.location.file[-12:-4])
    await comp.compact_segment(tomb_seg)  # victim's old record still in segment 1: keep the tombstone
    assert s.index.tombstone(BlobId("victim", 0)) is not None
    await s.close()
    s = await opened(tmp_path, OPTS)
    with pytest.raises(NoSuchKey):
        await read(s, "victim")
    comp = Compactor(s, rate=0)
    await comp.compact_segment(1)  # the old record goes
    assert BlobId("victim", 0) not in s.index.dead
    tomb = s.index.tombstone(BlobId("victim", 0))
    await comp.compact_segment(int(tomb.location.file[-12:-4]))  # now the tombstone may go
    assert s.index.tombstone(BlobId("victim", 0)) is None
    assert s.stats()["tombstones"] == 0  # memory does not keep deletes once compacted
    await s.close()
    s = await opened(tmp_path, OPTS)
    try:
        with pytest.raises(NoSuchKey):
            await read(s, "victim")
        assert await read(s, "fill3") == b"f" * 1000
    finally:
        await s.close()


async def test_tombstones_do_not_accumulate_in_memory(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        comp = Compactor(s, rate=0)
        for round_ in range(4):
            for i in range(40):
                await put(s, f"r{round_}-{i}", b"x" * 200)
            for i in range(40):
                assert await s.delete(BlobId(f"r{round_}-{i}", 0))
            await comp.compact_once()
            await comp.compact_once()  # tombstones freed by the first round go in the second
        assert s.stats()["tombstones"] <= 40  # at most the last, still uncompacted, round
        assert len(s.index.dead) <= 40
    finally:
        await s.close()


async def one_live_blob_among_deleted(s, key: str) -> bytes:
    """Segment 1 holding ``key`` (1800 random bytes, returned) and ten deleted blobs after it."""
    data = os.urandom(1800)
    await put(s, key, data)
    for i in range(10):
        await put(s, f"gone{i}", b"g" * 1500)
    for i in range(10):
        await s.delete(BlobId(f"gone{i}", 0))
    return data


async def test_a_read_started_before_compaction_finishes(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        data = await one_live_blob_among_deleted(s, "streamed")
        r = await s.open_read(BlobId("streamed", 0))
        async with r:
            await Compactor(s, rate=0).compact_segment(1)
            assert not (tmp_path / segment_name(1)).exists()
            assert open_fds_to(segment_name(1)) == 1  # pinned by the read
            assert await r.read_all() == data
        assert open_fds_to(segment_name(1)) == 0  # closed with the read's end
        assert await read(s, "streamed") == data  # now from the copy
    finally:
        await s.close()


async def test_open_segment_descriptors_are_bounded(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        for i in range(60):
            await put(s, f"b{i}", b"z" * 1000)
        assert len(s.segments.numbers) > 6
        for i in range(60):
            assert await read(s, f"b{i}") == b"z" * 1000
        assert s.segments.readers.open_count <= OPTS.max_open_readers
    finally:
        await s.close()


def open_fds_to(rel: str) -> int:
    """Descriptors of this process open on a file named ``rel`` (unlinked or not)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").split(" (deleted)")[0].endswith(rel)
        except OSError:
            pass
    return n


class Crash:
    """Raises CrashPoint at the ``at``-th step reached (counting from 0); counts steps."""

    def __init__(self, at: int = -1) -> None:
        self.at, self.n, self.steps = at, 0, []

    def __call__(self, step: str) -> None:
        self.steps.append(step)
        self.n += 1
        if self.n - 1 == self.at:
            raise CrashPoint(step)


async def _crash_run(path: Path, seed: int, at: int, torn: bool, ops: int = 200) -> list[str]:
    s = await opened(path, OPTS)
    want = await workload(s, seed, ops)
    crash = Crash(at)
    try:
        await Compactor(s, rate=0, crash=crash).compact_once()
    except CrashPoint:
        pass
    await s.close()  # nothing is queued at a crash point: closing only closes files
    if torn:  # the crash tore a copy batch being written: a partial record at the tail
        active = max((path / SEGMENT_DIR).iterdir())
        first = (path / segment_name(1))
        src = first if first.exists() else min((path / SEGMENT_DIR).iterdir())
        with open(active, "ab") as f:
            f.write(src.read_bytes()[:700])
    s = await opened(path, OPTS)
    try:
        await check(s, want, all_ids(seed, ops))
        await Compactor(s, rate=0).compact_once()  # and a later round completes the work
        await check(s, want, all_ids(seed, ops))
    finally:
        await s.close()
    s = await opened(path, OPTS)
    try:
        await check(s, want, all_ids(seed, ops))
    finally:
        await s.close()
    return crash.steps


def _crash_indexes(steps: list[str]) -> list[int]:
    """The first and last time each step is reached (every step of the procedure)."""
    firsts = {name: steps.index(name) for name in set(steps)}
    lasts = {name: len(steps) - 1 - steps[::-1].index(name) for name in set(steps)}
    return sorted(set(firsts.values()) | set(lasts.values()))


async def test_a_crash_at_every_step_loses_nothing_and_resurrects_nothing(tmp_path: Path) -> None:
    steps = await _crash_run(tmp_path / "dry", seed=7, at=-1, torn=False)
    assert {"scanned", "copied", "before-unlink", "unlinked"} <= set(steps)
    for at in _crash_indexes(steps):
        await _crash_run(tmp_path / f"crash{at}", seed=7, at=at, torn=steps[at] == "copied")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
async def test_a_crash_at_every_point_of_a_round(tmp_path: Path, seed: int) -> None:
    steps = await _crash_run(tmp_path / "dry", seed=seed, at=-1, torn=False, ops=400)
    for at, step in enumerate(steps):
        await _crash_run(tmp_path / f"crash{at}", seed=seed, at=at, torn=step == "copied", ops=400)


async def test_after_compaction_reads_come_from_the_copy_and_the_removed_segment_is_closed(tmp_path: Path) -> None:
    """A cached descriptor of a removed segment never serves a read again: the copy's
    location names another file, and the removed file's descriptor is closed."""
    s = await opened(tmp_path, OPTS)
    try:
        data = await one_live_blob_among_deleted(s, "kept")
        assert await read(s, "kept", 0, 0, 99) == data[:100]  # caches segment 1's descriptor
        assert open_fds_to(segment_name(1)) == 1
        await Compactor(s, rate=0).compact_segment(1)
        assert not (tmp_path / segment_name(1)).exists()
        assert open_fds_to(segment_name(1)) == 0  # closed when the segment was removed
        assert s.index.get(BlobId("kept", 0)).location.file != segment_name(1)
        assert await read(s, "kept", 0, 0, 99) == data[:100]
        assert await read(s, "kept") == data
    finally:
        await s.close()
