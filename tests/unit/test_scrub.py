"""The scrubber on a real temporary store: pacing with a fake clock, damage found in a
block, a header or a footer, quarantine across index rebuilds, repair by rewrite."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from objstore.errors import NoSuchKey
from objstore.node.blob import FOOTER_SIZE, BlobId
from objstore.node.quarantine import MAX_ENTRIES, QuarantineList, Quarantined
from objstore.node.repair_report import ReportQueue
from objstore.node.record_check import order_key
from objstore.node.scrub import Scrubber
from objstore.pacing import TokenBucket
from objstore.node.store import BlobStore, StoreOptions
from tests.harness.disk import flip
from tests.unit.test_store import chunks, opened, read

OPTS = StoreOptions(small_threshold=2048, block_size=64, max_segment_bytes=1 << 20, io_threads=2)


class FakeTime:
    """A clock whose sleep advances it (and records each sleep)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, d: float) -> None:
        self.sleeps.append(d)
        self.now += d
        await asyncio.sleep(0)


async def put(store: BlobStore, vid: str, data: bytes, shard: int = 0, policy: str = "replica:3") -> None:
    await store.put(BlobId(vid, shard), "bkt", f"key-{vid}", policy, len(data), chunks(data))


def scrubber(store: BlobStore, t: FakeTime, reports: ReportQueue | None = None, **kw) -> Scrubber:
    return Scrubber(store, "s1", rate=kw.pop("rate", 1e12), interval=kw.pop("interval", 3600.0), reports=reports,
                    clock=t, monotonic=t, sleep=t.sleep, **kw)


def where(store: BlobStore, vid: str, part: str) -> tuple[Path, int]:
    """(file, offset) of a byte inside ``part`` (header, block, footer) of a blob's record."""
    loc = store.index.get(BlobId(vid, 0)).location
    path = Path(store.data_dir) / loc.file
    return path, {"header": loc.offset + 12, "block": loc.data_offset + 70,
                  "footer": loc.offset + loc.length - FOOTER_SIZE + 6}[part]


async def never_send(batch: list[dict]) -> None:
    raise AssertionError("not sent in this test")


async def test_token_bucket_paces_reads_to_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=1_000_000, burst=500_000, clock=t, sleep=t.sleep)
    start = t.now
    for _ in range(100):
        await bucket.take(100_000)  # 10 MB
    elapsed = t.now - start
    # The burst is free, the rest goes at the rate: 9.5 s, never less.
    assert elapsed == pytest.approx(9.5, abs=0.01)
    t.now += 100  # idle: the bucket refills only up to its burst
    start = t.now
    for _ in range(10):
        await bucket.take(100_000)
    assert t.now - start == pytest.approx(0.5, abs=0.01)


async def test_a_pass_is_paced_by_the_scrub_rate(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        for i in range(20):
            await put(s, f"v{i}", os.urandom(1500 if i % 2 else 5000))  # segment records and blob files
        t = FakeTime()
        sc = scrubber(s, t, rate=10_000, burst=1000)
        p = await sc.run_pass()
        total = sum(e.location.length for e in s.index.entries())
        assert p.bytes_done == p.bytes_total == total and p.blobs_done == 20 and p.corrupt == 0
        assert sc.bytes_verified == total
        assert t.now - p.started == pytest.approx((total - 1000) / 10_000, rel=0.01)
    finally:
        await s.close()


@pytest.mark.parametrize("part", ["header", "block", "footer"])
@pytest.mark.parametrize("size", [1500, 5000])  # a segment record, a blob file
async def test_flipped_byte_is_found_quarantined_and_reported(tmp_path: Path, part: str, size: int) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        data = {f"v{i}": os.urandom(size) for i in range(4)}
        for vid, body in data.items():
            await put(s, vid, body, policy="ec:4+2" if vid == "v1" else "replica:3")
        flip(*where(s, "v1", part))
        reports = ReportQueue(never_send)
        sc = scrubber(s, FakeTime(), reports)
        p = await sc.run_pass()
        assert p.corrupt == 1 and sc.status()["corrupt_found"] == 1 and sc.status()["quarantined"] == 1
        with pytest.raises(NoSuchKey):
            s.head(BlobId("v1", 0))
        for vid in ("v0", "v2", "v3"):
            assert await read(s, vid) == data[vid]
        assert list(reports._queue) == [{"bucket": "bkt", "key": "key-v1", "version_id": "v1", "part": 0,
                                         "shard": 0, "node_id": "s1", "reason": "corrupt"}]
        # The next pass does not find it again: it is no longer indexed.
        assert (await sc.run_pass()).corrupt == 0
    finally:
        await s.close()


async def test_replica_reports_carry_an_unknown_shard(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        await put(s, "v1", os.urandom(300))
        flip(*where(s, "v1", "block"))
        reports = ReportQueue(never_send)
        await scrubber(s, FakeTime(), reports).run_pass()
        assert [r["shard"] for r in reports._queue] == [-1]
    finally:
        await s.close()


async def test_quarantine_survives_an_index_rebuild_and_a_rewrite_clears_it(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    blob, small = os.urandom(5000), os.urandom(1500)
    await put(s, "big", blob)
    await put(s, "small", small)
    await put(s, "after", b"x" * 100)  # so the damaged record is not the active segment's tail
    flip(*where(s, "big", "block"))
    flip(*where(s, "small", "block"))
    assert (await scrubber(s, FakeTime()).run_pass()).corrupt == 2
    await s.close()

    s = await opened(tmp_path, OPTS)  # the records are still on disk; the index must not serve them
    try:
        for vid in ("big", "small"):
            with pytest.raises(NoSuchKey):
                s.head(BlobId(vid, 0))
        assert len(s.quarantined) == 2 and s.quarantined.corrupt_total == 2
        assert s.stats()["quarantined"] == 2
        big_file = Path(s.data_dir) / s.quarantined.get(BlobId("big", 0)).file
        assert big_file.exists()  # kept for inspection until repaired
        # A repair writes the blob again: the new record is served, the entry counts as repaired.
        await put(s, "big", blob)
        await put(s, "small", small)
        assert await read(s, "big") == blob and await read(s, "small") == small
        assert len(s.quarantined) == 0 and s.quarantined.repaired_total == 2
    finally:
        await s.close()
    assert not big_file.exists()
    s = await opened(tmp_path, OPTS)
    try:
        assert await read(s, "big") == blob and await read(s, "small") == small
        assert s.quarantined.repaired_total == 2 and len(s.quarantined) == 0
    finally:
        await s.close()


async def test_deleting_a_quarantined_blob_forgets_it_without_counting_a_repair(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        await put(s, "v", os.urandom(5000))
        entry = s.head(BlobId("v", 0))
        assert await s.quarantine(entry, "test")
        assert not await s.quarantine(entry, "again")  # no longer the live record
        assert await s.delete(BlobId("v", 0))  # a tombstone, though the record is not served
        assert len(s.quarantined) == 0 and s.quarantined.repaired_total == 0 and s.quarantined.corrupt_total == 1
        assert not await s.delete(BlobId("v", 0))
    finally:
        await s.close()
    s = await opened(tmp_path, OPTS)
    try:
        assert len(s.quarantined) == 0 and s.index.get(BlobId("v", 0)) is None
    finally:
        await s.close()


async def test_a_record_replaced_during_a_pass_is_not_quarantined(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        await put(s, "v", os.urandom(5000))
        old = s.head(BlobId("v", 0))
        await put(s, "v", os.urandom(5000))  # replaced: the old file is unlinked
        assert not await s.quarantine(old, "stale")
        assert await read(s, "v") is not None and len(s.quarantined) == 0
    finally:
        await s.close()


def test_quarantine_list_is_bounded_and_round_trips() -> None:
    ql = QuarantineList(limit=3)
    for i in range(5):
        ql.add(Quarantined(f"v{i}", 0, i + 1, "b", "k", "replica:3", "segments/seg-00000001.dat", "bad", 1.0))
    assert len(ql) == 3 and [q.version_id for q in ql] == ["v2", "v3", "v4"]
    assert ql.corrupt_total == 5 and ql.forgotten == 2
    again = QuarantineList.from_json(ql.to_json(), limit=3)
    assert [q for q in again] == [q for q in ql] and again.corrupt_total == 5
    assert ql.resolve(BlobId("v3", 0), 4, repaired=True) is None  # the same seq: not newer
    assert ql.resolve(BlobId("v3", 0), 9, repaired=True).seq == 4 and ql.repaired_total == 1
    assert QuarantineList().limit == MAX_ENTRIES


async def test_pass_schedule_start_to_start_and_start_now(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    t = FakeTime()
    waits: list[float] = []

    async def held_sleep(d: float) -> None:  # the schedule's sleep: held until the test moves on
        waits.append(d)
        await asyncio.Event().wait()

    sc = Scrubber(s, "s1", rate=1e12, interval=100.0, clock=t, monotonic=t, sleep=held_sleep)
    try:
        await put(s, "v", os.urandom(3000))
        assert sc.next_pass_at() == 0.0  # never scrubbed: at once
        await sc.start()
        await wait_for(lambda: waits)
        first = sc.status()
        assert sc.passes_completed == 1 and first["last_full_pass"] == t.now
        assert first["next_pass_at"] == first["last_pass"]["started"] + 100 and waits == [100.0]
        assert first["state"] == "waiting" and first["pass"] is None
        t.now += 30
        assert sc.start_pass() == 2  # wakes the scheduler before its sleep ends
        await wait_for(lambda: len(waits) == 2)
        assert sc.passes_completed == 2 and waits[1] == 100.0
        await sc.close()
        state = json.loads((tmp_path / "scrub.json").read_text())
        assert state["passes_completed"] == 2 and state["last_full_pass"] == t.now
        again = Scrubber(s, "s1", interval=100.0)
        again.load_state()
        assert again.passes_completed == 2 and again.next_pass_at() == state["last_full_pass_started"] + 100
    finally:
        await sc.close()
        await s.close()


async def wait_for(cond, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_an_interrupted_pass_resumes_where_it_stopped(tmp_path: Path) -> None:
    s = await opened(tmp_path, OPTS)
    try:
        for i in range(30):
            await put(s, f"v{i:02d}", os.urandom(1500 if i % 3 else 5000))
        total = sum(e.location.length for e in s.index.entries())
        t = FakeTime()
        calls = 0

        async def sleep_then_crash(d: float) -> None:
            nonlocal calls
            calls += 1
            t.now += d
            if calls == 6:
                raise asyncio.CancelledError()  # the node stops mid-pass

        first = Scrubber(s, "s1", rate=20_000, burst=1000, clock=t, monotonic=t, sleep=sleep_then_crash,
                         checkpoint=0.0)
        started = t.now
        with pytest.raises(asyncio.CancelledError):
            await first.run_pass()
        done_before = first.bytes_verified
        assert 0 < done_before < total
        await first.close()
        # The last record in pass order is damaged: the resumed pass must still reach it.
        last = max(s.index.entries(), key=order_key)
        loc = last.location
        flip(Path(s.data_dir) / loc.file, loc.data_offset + 3)

        again = scrubber(s, t)
        again.load_state()
        assert again.resume is not None and again.next_pass_at() == 0.0
        p = await again.run_pass()
        assert p.pass_id == 1 and p.corrupt == 1 and p.blobs_done == 30 and p.bytes_done == total
        assert again.bytes_verified < total  # what was verified before the restart is not read again
        assert again.bytes_verified + done_before >= total
        assert p.started == started == json.loads((tmp_path / "scrub.json").read_text())["last_full_pass_started"]
        again.load_state()
        assert again.resume is None and again.passes_completed == 1
    finally:
        await s.close()

