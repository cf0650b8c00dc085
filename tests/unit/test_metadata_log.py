"""The durable log (group commit, torn tails, corruption, truncation, compaction), the small
durable files, and restart of a single node (a one-voter Raft group) from snapshot + log."""
from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from pathlib import Path

import pytest

from metadata.api import commands as c
from metadata.fsm.snapshot import FrozenState, restore, snapshot_bytes
from metadata.raft.confchange import ConfChange, ConfChangeType
from metadata.raft.records import HardState
from metadata.replication.driver import RaftReplicator, RaftSettings, open_one_voter, snapshot_interval
from metadata.storage.files import DamagedFile, load_hard_state, save_hard_state
from metadata.storage.log import DiskLog, LogClosedError, LogRecord
from metadata.storage.log_format import RECORD_HEADER, SEGMENT_HEADER, CorruptLogError, segment_name
from metadata.storage.snapshot_store import SnapshotStore
from objstore.errors import InvalidArgument, ServiceUnavailable
from objstore.types import Credential, NodeInfo, ObjectVersion


def entries(lo: int, hi: int, term: int = 1) -> list[LogRecord]:
    return [LogRecord(term, i, f"payload-{i}".encode() * (i % 3 + 1)) for i in range(lo, hi + 1)]


async def written_log(path: Path, n: int, **kw) -> list[LogRecord]:
    lg = await DiskLog.open(path, **kw)
    es = entries(1, n)
    await lg.append(es)
    await lg.close()
    return es


def only_segment(path: Path) -> Path:
    (seg,) = sorted(path.glob("seg-*.log"))
    return seg


async def test_append_read_and_reopen(tmp_path):
    lg = await DiskLog.open(tmp_path)
    assert (lg.first_index, lg.last_index, lg.last_term) == (1, 0, 0)
    es = entries(1, 5, term=2)
    fut = lg.append(es)
    assert lg.last_index == 5 and lg.durable_index == 0
    assert lg.entries(1, 5) == es  # readable before it is durable
    await fut
    assert lg.durable_index == 5
    await lg.close()
    lg = await DiskLog.open(tmp_path)
    assert (lg.first_index, lg.last_index, lg.last_term) == (1, 5, 2)
    assert lg.entries(1, 5) == es and lg.term_at(3) == 2
    with pytest.raises(IndexError):
        lg.term_at(6)
    with pytest.raises(ValueError):
        lg.append(entries(7, 7))
    await lg.close()
    with pytest.raises(LogClosedError):
        lg.append(entries(6, 6))


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
async def test_group_commit_resolves_every_append_with_few_fsyncs(tmp_path, inline):
    lg = await DiskLog.open(tmp_path)
    lg.inline = inline  # writes on the loop's thread (a Raft follower's) batch alike
    # Appends that arrive while no write is running all go into the next single write + fsync.
    futs = [lg.append([e]) for e in entries(1, 200)]
    await asyncio.gather(*futs)
    assert all(f.done() and f.exception() is None for f in futs)
    assert lg.durable_index == 200 and lg.fsyncs == 1

    # Concurrent appenders: each awaits its own durability; writes are batched.
    async def appender(k: int) -> None:
        for _ in range(20):
            i = lg.last_index + 1
            await lg.append([LogRecord(1, i, b"x%d" % k)])
            assert lg.durable_index >= i

    before = lg.fsyncs
    await asyncio.gather(*(appender(k) for k in range(32)))
    assert lg.last_index == 200 + 32 * 20 == lg.durable_index
    assert lg.fsyncs - before < 32 * 20 / 4
    await lg.close()
    lg = await DiskLog.open(tmp_path)
    assert lg.last_index == 840
    await lg.close()


async def test_torn_tail_is_cut_at_every_byte_offset_of_the_last_record(tmp_path):
    src = tmp_path / "src"
    es = await written_log(src, 6)
    data = only_segment(src).read_bytes()
    last_len = RECORD_HEADER.size + len(es[-1].payload)
    last_start = len(data) - last_len
    for cut in range(last_start, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / segment_name(1)).write_bytes(data[:cut])
        lg = await DiskLog.open(d)
        assert lg.last_index == 5, cut
        assert lg.entries(1, 5) == es[:5]
        assert (d / segment_name(1)).stat().st_size == last_start
        await lg.append([LogRecord(3, 6, b"after")])  # the log goes on from the cut
        await lg.close()
        lg = await DiskLog.open(d)
        assert lg.entries(6, 6) == [LogRecord(3, 6, b"after")]
        await lg.close()


async def test_garbage_or_zeros_after_the_last_record_are_cut(tmp_path):
    es = await written_log(tmp_path, 4)
    seg = only_segment(tmp_path)
    for junk in (b"\x00" * 4096, os.urandom(100)):
        with open(seg, "ab") as f:
            f.write(junk)
        lg = await DiskLog.open(tmp_path)
        assert lg.entries(1, 4) == es
        await lg.close()


async def test_damaged_last_record_is_a_torn_tail(tmp_path):
    es = await written_log(tmp_path, 4)
    seg = only_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0xFF
    seg.write_bytes(bytes(data))
    lg = await DiskLog.open(tmp_path)
    assert lg.last_index == 3 and lg.entries(1, 3) == es[:3]
    await lg.close()


@pytest.mark.parametrize("where", ["payload", "header"])
async def test_corrupt_record_in_the_middle_is_detected(tmp_path, where):
    es = await written_log(tmp_path, 10)
    seg = only_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    off = SEGMENT_HEADER.size + sum(RECORD_HEADER.size + len(e.payload) for e in es[:4])
    data[off + (RECORD_HEADER.size + 1 if where == "payload" else 14)] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError):
        await DiskLog.open(tmp_path)


async def test_corruption_in_an_earlier_segment_is_detected(tmp_path):
    await written_log(tmp_path, 30, segment_bytes=100)
    segs = sorted(tmp_path.glob("seg-*.log"))
    assert len(segs) >= 1
    lg = await DiskLog.open(tmp_path, segment_bytes=100)
    for i in range(31, 60):
        await lg.append([LogRecord(1, i, b"more-%d" % i)])
    await lg.close()
    segs = sorted(tmp_path.glob("seg-*.log"))
    assert len(segs) > 3
    data = bytearray(segs[1].read_bytes())
    data[-1] ^= 0x01
    segs[1].write_bytes(bytes(data))
    with pytest.raises(CorruptLogError):
        await DiskLog.open(tmp_path, segment_bytes=100)


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
async def test_truncate_suffix_then_append_new_terms(tmp_path, inline):
    lg = await DiskLog.open(tmp_path, segment_bytes=120)
    lg.inline = inline
    for i in range(1, 11):
        await lg.append([LogRecord(1, i, b"old-%d" % i)])
    lg.truncate_suffix(4)
    assert lg.last_index == 3
    new = [LogRecord(2, i, b"new-%d" % i) for i in range(4, 8)]
    await lg.append(new)
    assert lg.entries(3, 7)[1:] == new
    await lg.close()
    lg = await DiskLog.open(tmp_path, segment_bytes=120)
    assert lg.last_index == 7 and [lg.term_at(i) for i in range(1, 8)] == [1, 1, 1, 2, 2, 2, 2]
    assert lg.entries(4, 7) == new and lg.entries(3, 3)[0].payload == b"old-3"
    await lg.close()


def records_end(es: list[LogRecord]) -> int:
    return SEGMENT_HEADER.size + sum(RECORD_HEADER.size + len(e.payload) for e in es)


def crash_copy(src: Path, dst: Path) -> Path:
    """The log's files as a crash would leave them now (copied while the log is open)."""
    dst.mkdir()
    for p in src.glob("seg-*.log"):
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
async def test_appends_overwrite_preallocated_zeros_and_a_crash_keeps_them_as_room(tmp_path, inline, caplog):
    lg = await DiskLog.open(tmp_path / "log")
    lg.inline = inline
    es = entries(1, 20)
    for e in es:
        await lg.append([e])
    seg = only_segment(tmp_path / "log")
    size = seg.stat().st_size
    # Zeros ahead of the records: an fdatasync has no file size to record.
    assert size > records_end(es) and not seg.read_bytes()[records_end(es):].strip(b"\0")
    await lg.append(entries(21, 22))
    assert seg.stat().st_size == size  # written into the room, the file did not grow
    copy = crash_copy(tmp_path / "log", tmp_path / "crashed")
    await lg.close()
    # A stopped log's file ends at its last record.
    assert seg.stat().st_size == records_end(entries(1, 22))
    caplog.clear()
    lg = await DiskLog.open(copy)  # the zeros are room, not a torn tail
    assert lg.last_index == 22 and lg.entries(1, 22) == entries(1, 22)
    assert "torn" not in caplog.text
    await lg.append(entries(23, 23))
    await lg.close()
    lg = await DiskLog.open(copy)
    assert lg.entries(1, 23) == entries(1, 23)
    await lg.close()


async def test_inline_writes_only_batches_up_to_the_limit_on_the_loop_thread(tmp_path):
    lg = await DiskLog.open(tmp_path)
    lg.inline, lg.inline_max_entries = True, 2
    threads: list[int] = []
    lg.on_fsync = lambda n, _s: threads.append(threading.get_ident())
    await lg.append(entries(1, 2))  # small: on the loop's thread
    await lg.append(entries(3, 7))  # large: in the writer thread
    lg.inline_max_entries = None
    await lg.append(entries(8, 20))  # no limit: inline
    loop_thread = threading.get_ident()
    assert [t == loop_thread for t in threads] == [True, False, True]
    await lg.close()


async def test_a_failed_preallocation_does_not_stop_the_log(tmp_path, monkeypatch):
    """Preallocation only saves time: a disk too full for the room still takes the records."""
    import errno

    def full(self, need_end):
        raise OSError(errno.ENOSPC, "No space left on device")

    lg = await DiskLog.open(tmp_path / "log")
    await lg.append(entries(1, 3))
    monkeypatch.setattr(DiskLog, "_preallocate", full)
    lg._segments[-1].allocated = lg._segments[-1].size  # no room left
    await lg.append(entries(4, 30))
    monkeypatch.undo()
    lg._prealloc_retry_at = 0.0  # room can be made again: never over the records appended
    await lg.append(entries(31, 31))
    copy = crash_copy(tmp_path / "log", tmp_path / "crashed")
    await lg.close()
    for d in (tmp_path / "log", copy):
        lg = await DiskLog.open(d)
        assert lg.entries(1, 31) == entries(1, 31)
        await lg.close()


async def test_a_truncated_suffix_is_not_read_back_after_a_crash(tmp_path):
    """Entries cut by truncate_suffix stay cut when newer, shorter ones follow them and the
    node crashes: the cut is an ftruncate, never an overwrite of preallocated room."""
    lg = await DiskLog.open(tmp_path / "log")
    await lg.append([LogRecord(1, i, b"old-entry-%d" % i * 3) for i in range(1, 11)])
    lg.truncate_suffix(4)
    await lg.append([LogRecord(2, 4, b"n4")])
    copy = crash_copy(tmp_path / "log", tmp_path / "crashed")
    await lg.close()
    lg = await DiskLog.open(copy)
    assert lg.last_index == 4 and lg.term_at(4) == 2
    await lg.close()


async def test_sealed_segments_end_at_their_last_record(tmp_path):
    lg = await DiskLog.open(tmp_path / "log", segment_bytes=200)
    for i in range(1, 41):
        await lg.append([LogRecord(1, i, b"entry-%03d" % i)])
    segs = sorted((tmp_path / "log").glob("seg-*.log"))
    assert len(segs) > 2
    copy = crash_copy(tmp_path / "log", tmp_path / "crashed")
    await lg.close()
    for p in segs[:-1]:
        assert not p.read_bytes().endswith(b"\0" * 8)
    lg = await DiskLog.open(copy, segment_bytes=200)
    assert lg.last_index == 40 and lg.entries(40, 40)[0].payload == b"entry-040"
    await lg.close()


async def test_truncate_of_unwritten_entries_in_the_same_batch(tmp_path):
    lg = await DiskLog.open(tmp_path)
    lg.append(entries(1, 5))
    lg.truncate_suffix(3)
    await lg.append([LogRecord(7, 3, b"three")])
    assert lg.last_index == 3 and lg.durable_index == 3
    await lg.close()
    lg = await DiskLog.open(tmp_path)
    assert [e.term for e in lg.entries(1, 3)] == [1, 1, 7]
    await lg.close()


async def test_compaction_deletes_whole_old_segments(tmp_path):
    lg = await DiskLog.open(tmp_path, segment_bytes=200)
    for i in range(1, 101):
        await lg.append([LogRecord(1, i, b"entry-%03d" % i)])
    nsegs = len(list(tmp_path.glob("seg-*.log")))
    await lg.compact(60)
    assert 1 < lg.first_index <= 61
    assert len(list(tmp_path.glob("seg-*.log"))) < nsegs
    assert lg.entries(61, 100)[0].payload == b"entry-061"
    first = lg.first_index
    await lg.close()
    lg = await DiskLog.open(tmp_path, segment_bytes=200)
    assert lg.first_index == first and lg.last_index == 100
    await lg.append([LogRecord(2, 101, b"x")])
    await lg.close()


async def test_reset_starts_the_log_at_a_new_index(tmp_path):
    lg = await DiskLog.open(tmp_path)
    await lg.append(entries(1, 5))
    await lg.reset(100)
    assert (lg.first_index, lg.last_index) == (100, 99)
    await lg.append([LogRecord(4, 100, b"hundred")])
    await lg.close()
    lg = await DiskLog.open(tmp_path)
    assert (lg.first_index, lg.last_index) == (100, 100)
    await lg.close()


def test_hard_state_round_trip_and_damage(tmp_path):
    p = tmp_path / "hs"
    assert load_hard_state(p) is None
    save_hard_state(p, HardState(7, "m2", 3))
    assert load_hard_state(p) == HardState(7, "m2", 3)
    p.write_bytes(p.read_bytes().replace(b'"term": 7', b'"term": 8'))
    with pytest.raises(DamagedFile):
        load_hard_state(p)


async def test_snapshot_store_verifies_and_keeps_two(tmp_path):
    store = SnapshotStore(tmp_path)
    body = [b'{"a":1}\n', b'{"b":2}\n' * 3]
    for idx in (10, 20, 30):
        await store.save(idx, 1, iter(body))
    assert [m.index for m in store.list()] == [30, 20]
    latest = store.latest_valid()
    assert latest.index == 30 and b"".join(store.read_lines(latest)) == b"".join(body)
    data = bytearray(latest.path.read_bytes())
    data[20] ^= 0x01
    latest.path.write_bytes(bytes(data))
    assert store.latest_valid().index == 20


# --- a single node (one-voter Raft group): restart from snapshot + log -------------------------


def after_leader_noop(state: bytes) -> bytes:
    """``state`` (snapshot bytes) once the restarted leader's no-op entry of its new term is
    applied: the same objects, buckets and sessions, one index further."""
    fsm = restore(state.splitlines(keepends=True))
    fsm.apply(fsm.applied_index + 1, c.Noop())
    return snapshot_bytes(fsm)


async def open_single(path: Path, snapshot_every: int, segment_bytes: int = 64 << 20) -> RaftReplicator:
    settings = RaftSettings(snapshot_every=snapshot_every, segment_bytes=segment_bytes)
    rep = await open_one_voter("m1", path, "127.0.0.1:1", settings=settings)
    assert rep.is_leader()
    return rep


def ver(key: str, vid: str = "v1") -> ObjectVersion:
    return ObjectVersion("b", key, vid, 3, "0" * 32, 1.0, placement=("n1",))


async def drive(rep: RaftReplicator, n: int, start: int = 0) -> None:
    outs = await asyncio.gather(*(rep.propose(c.PutObject(ver(f"k{start + i:05d}"))) for i in range(n)))
    assert all(o.error is None for o in outs)


async def test_restart_replays_the_log_to_the_same_state(tmp_path):
    rep = await open_single(tmp_path, snapshot_every=10**9)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    await rep.propose(c.RegisterNode(NodeInfo("n1", "h:1")))
    await rep.propose(c.PutCredential(Credential("AK", "SK", "alice")))
    await drive(rep, 300)
    await rep.propose(c.DeleteObject("b", "k00007"))
    out = await rep.propose(c.PutObject(ver("k00009", "v2"), client_id="g", seq=1, ack=1))
    assert out.result(c.PutObject).replaced.version_id == "v1"
    before = snapshot_bytes(rep.fsm)
    term = rep.node.term
    await rep.close()
    rep = await open_single(tmp_path, snapshot_every=10**9)
    assert snapshot_bytes(rep.fsm) == after_leader_noop(before) and rep.node.term == term + 1
    # The retried command is still de-duplicated after the restart.
    again = await rep.propose(c.PutObject(ver("k00009", "v3"), client_id="g", seq=1, ack=1))
    assert again == out
    assert (await rep.read(lambda f: f.get_object("b", "k00009"))).version_id == "v2"
    await rep.close()


async def _snapshot_settled(rep: RaftReplicator) -> int:
    """The newest snapshot's index once no snapshot is being written."""
    deadline = time.monotonic() + 10
    while rep._snap_task is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert rep._snap_task is None
    return rep.storage.snapshot_meta.index


async def test_snapshots_are_spaced_in_proportion_to_the_records_held(tmp_path):
    assert snapshot_interval(10_000, 0) == 10_000 and snapshot_interval(10_000, 159_999) == 10_000
    assert snapshot_interval(10_000, 1_000_000) == 62_500
    rep = await open_single(tmp_path, snapshot_every=20)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    for k in range(16):
        await drive(rep, 100, start=k * 100)
    at = await _snapshot_settled(rep)
    assert at > 0
    # 1600 keys: a snapshot is due every 100 entries, not every 20.
    await drive(rep, 60, start=2000)
    for _ in range(5):
        await asyncio.sleep(0)
    assert rep._snap_task is None and rep.storage.snapshot_meta.index == at
    await drive(rep, 60, start=2100)
    assert await _snapshot_settled(rep) > at
    await rep.close()


async def test_a_written_snapshot_settles_the_index(tmp_path):
    """After a snapshot is written the index's containers are frozen (metadata.heap), so a
    full cyclic collection no longer walks them; the frozen copy the snapshot was encoded
    from is not kept."""
    rep = await open_single(tmp_path, snapshot_every=50)
    try:
        await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
        await drive(rep, 40)
        sublist = rep.fsm.objects["b"].live._list._lists[0]  # the sorted keys' first block
        assert any(o is sublist for o in gc.get_objects())
        await drive(rep, 60, start=100)
        assert await _snapshot_settled(rep) > 0
        assert not any(o is sublist for o in gc.get_objects())
        gc.unfreeze()  # frozen objects are invisible to get_referrers
        assert not any(isinstance(o, FrozenState) for o in gc.get_referrers(rep.fsm.atoms))
    finally:
        await rep.close()
        gc.unfreeze()


async def test_member_addresses_survive_a_restart_from_the_snapshot_and_the_log_after_it(tmp_path):
    """Start-up reads addresses from the snapshot's header and only the log entries after
    the snapshot: a member added before the snapshot and one added after are both known."""
    rep = await open_single(tmp_path, snapshot_every=50)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    await rep.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "m2", b"127.0.0.1:2"))
    await drive(rep, 120)
    at = await _snapshot_settled(rep)
    assert at > 0 and rep.storage.dlog.first_index <= at  # the entry adding m2 is behind the snapshot
    await rep.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "m3", b"127.0.0.1:3"))
    await drive(rep, 10, start=500)
    assert rep.storage.snapshot_meta.index == at
    await rep.close()
    rep = await open_single(tmp_path, snapshot_every=50)
    try:
        assert rep.addresses["m2"] == "127.0.0.1:2" and rep.addresses["m3"] == "127.0.0.1:3"
    finally:
        await rep.close()


async def test_snapshot_compaction_and_restart(tmp_path):
    rep = await open_single(tmp_path, snapshot_every=100, segment_bytes=2000)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    for k in range(5):
        await drive(rep, 100, start=k * 100)
    deadline = time.monotonic() + 10
    while (rep.storage.snapshot_meta.index < 400 or rep._snap_task is not None) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert rep.storage.snapshot_meta.index >= 400
    assert len(rep.storage.snapshots.list()) == 2
    assert rep.storage.dlog.first_index > 1  # compacted
    await drive(rep, 7, start=1000)
    before = snapshot_bytes(rep.fsm)
    await rep.close()
    rep = await open_single(tmp_path, snapshot_every=100, segment_bytes=2000)
    assert snapshot_bytes(rep.fsm) == after_leader_noop(before)
    assert rep.status()["objects"] == 507
    await rep.close()


async def test_restart_falls_back_to_the_older_snapshot_when_the_newest_is_damaged(tmp_path):
    rep = await open_single(tmp_path, snapshot_every=50, segment_bytes=1000)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    for k in range(4):
        await drive(rep, 50, start=k * 50)
    await rep.close()  # waits for a running snapshot
    before = snapshot_bytes(rep.fsm)
    newest = rep.storage.snapshots.list()[0]
    newest.path.write_bytes(newest.path.read_bytes()[:-5])
    rep = await open_single(tmp_path, snapshot_every=50, segment_bytes=1000)
    assert snapshot_bytes(rep.fsm) == after_leader_noop(before)
    await rep.close()


async def test_throughput_with_64_concurrent_proposers(tmp_path):
    rep = await open_single(tmp_path, snapshot_every=10**9)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    n_per, workers = 60, 64

    async def worker(w: int) -> None:
        for i in range(n_per):
            out = await rep.propose(c.PutObject(ver(f"w{w}/k{i}"), client_id=f"c{w}", seq=i + 1, ack=i + 1))
            assert out.error is None

    fsyncs = rep.storage.dlog.fsyncs
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    secs = time.perf_counter() - t0
    total = n_per * workers
    per_fsync = total / (rep.storage.dlog.fsyncs - fsyncs)
    print(f"\n{total / secs:.0f} commands/s, {per_fsync:.1f} commands per fsync")
    assert per_fsync > 4  # group commit; the rate is printed, measured by bench-metadata, not asserted
    await rep.close()


# --- a single node's state is the only copy: damage stops the start, nothing is cut ------------


async def test_a_single_node_with_a_damaged_hard_state_refuses_to_start(tmp_path):
    """No leader will ever bring a one-voter group past a point it distrusts: waiting for
    one (``recovering``) would leave it unavailable for good. It refuses to start, as the
    single node did before Raft."""
    from metadata.storage.recovery import StorageError

    rep = await open_single(tmp_path, snapshot_every=10**9)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    await rep.close()
    (tmp_path / "raft" / "hard-state").write_bytes(b"damaged")
    with pytest.raises(StorageError, match="only copy"):
        rep = await open_one_voter("m1", tmp_path, "127.0.0.1:1", timeout=1.0)
        await rep.close()
    assert not (tmp_path / "raft" / "recovering").exists()


async def test_a_single_node_with_a_damaged_log_refuses_to_start_and_keeps_it(tmp_path):
    """Salvage would delete every record after the damage, the only copy of acknowledged
    commands: the log is left as it is for an operator."""
    settings = RaftSettings(snapshot_every=10**9, segment_bytes=300)
    rep = await open_one_voter("m1", tmp_path, "127.0.0.1:1", settings=settings)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    for i in range(30):
        await drive(rep, 1, start=i)
    await rep.close()
    segs = sorted((tmp_path / "raft" / "log").glob("seg-*.log"))
    assert len(segs) > 3
    data = bytearray(segs[1].read_bytes())
    data[-1] ^= 0x01
    segs[1].write_bytes(bytes(data))
    before = {p.name: p.read_bytes() for p in segs}
    with pytest.raises(CorruptLogError):
        rep = await open_one_voter("m1", tmp_path, "127.0.0.1:1", settings=settings, timeout=1.0)
        await rep.close()
    assert {p.name: p.read_bytes() for p in sorted((tmp_path / "raft" / "log").glob("seg-*.log"))} == before


@pytest.mark.parametrize("peers", [(), ("m1=127.0.0.1:1",)], ids=["no-peers", "only-itself"])
async def test_a_single_node_leads_before_it_serves(tmp_path, peers):
    """The launcher names a single node as its only peer: either way the node opens as the
    leader of its one-voter group, as the single node before Raft answered at once."""
    from metadata.app import open_raft
    from objstore.config import MetadataConfig

    cfg = MetadataConfig("m1", str(tmp_path), "secret", port=1, peers=peers)
    for _ in range(2):  # a new dir, then a restart
        rep = await open_raft(cfg)
        try:
            assert rep.is_leader()  # type: ignore[attr-defined]
            assert (await rep.propose(c.Noop())).error is None
        finally:
            await rep.close()


async def test_a_single_node_restarted_at_another_address_still_leads(tmp_path):
    """The group's configuration names the node by id; a new --port only changes where it
    says it listens (the snapshot and CONF entries keep the old address)."""
    settings = RaftSettings(snapshot_every=3)
    rep = await open_one_voter("m1", tmp_path, "127.0.0.1:1", settings=settings)
    await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
    await drive(rep, 5)
    await rep.close()
    rep = await open_one_voter("m1", tmp_path, "127.0.0.1:2", settings=settings)
    try:
        assert rep.is_leader() and rep.status()["objects"] == 5
        assert rep.status()["members"] == {"m1": {"address": "127.0.0.1:2", "voter": True}}
        assert (await rep.propose(c.PutObject(ver("after")))).error is None
    finally:
        await rep.close()


async def test_propose_all_appends_in_order_and_answers_each_command(tmp_path):
    """The batch route's proposals: one Raft batch in order, each command its own outcome
    or error, an error given in place of a command handed back, as gathering propose."""
    rep = await open_single(tmp_path, snapshot_every=10**9)
    try:
        await rep.propose(c.CreateBucket("b", "alice", "replica:3", 1.0))
        before = rep.node.log.last_index()
        refused = InvalidArgument("malformed")
        huge = c.PutObject(ver("big"), if_match="x" * (9 << 20))
        outs = await rep.propose_all([c.PutObject(ver("a")), refused, c.PutObject(ver("a"), if_none_match=True),
                                      huge, c.PutObject(ver("b"), client_id="g", seq=1, ack=1)])
        assert outs[0].result(c.PutObject).version_id == "null"
        assert outs[1] is refused
        assert outs[2].error["code"] == "PreconditionFailed"
        assert isinstance(outs[3], InvalidArgument) and "exceeds" in str(outs[3])
        assert outs[4].result(c.PutObject).commit_index == outs[0].result(c.PutObject).commit_index + 2
        assert rep.node.log.last_index() == before + 3 and not rep._waiters
        again = await rep.propose(c.PutObject(ver("b", "v2"), client_id="g", seq=1, ack=1))
        assert again == outs[4]  # the session remembered it: applied once
    finally:
        await rep.close()


async def test_propose_all_fails_every_command_when_not_serving(tmp_path):
    rep = await open_single(tmp_path, snapshot_every=10**9)
    await rep.close()
    outs = await rep.propose_all([c.PutObject(ver("a")), c.PutObject(ver("b"))])
    assert len(outs) == 2 and all(isinstance(o, ServiceUnavailable) for o in outs)
