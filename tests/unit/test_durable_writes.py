"""Every durable writer writes fully or fails: short writes (``os.write`` writing one byte, or
half of what it is asked) still produce correct, readable data; ENOSPC reaches the caller,
nothing is acknowledged, and after a restart nothing half-written is served.

Writers: the metadata log, the hard state, metadata snapshots, the storage node's segment
group commit and its large-blob files (all through :mod:`objstore.durable_io`)."""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import AsyncIterator, Callable

import pytest

from metadata.raft.records import HardState
from metadata.storage.files import load_hard_state, save_hard_state
from metadata.storage.log import DiskLog, LogClosedError, LogRecord
from metadata.storage.snapshot_store import SnapshotStore
from objstore import durable_io
from objstore.errors import InsufficientStorage
from objstore.node.blob import BlobId
from objstore.node.store import BlobStore, StoreOptions

REAL_WRITE = os.write
OPTS = StoreOptions(small_threshold=2048, block_size=64, max_segment_bytes=1 << 20, io_threads=2)


def one_byte(fd: int, data) -> int:
    return REAL_WRITE(fd, bytes(data[:1]))


def half(fd: int, data) -> int:
    return REAL_WRITE(fd, bytes(data[: max(1, len(data) // 2)]))


class Disk:
    """``os.write`` that, once ``full``, writes a third of the first buffer it gets and then
    fails every write with ENOSPC."""

    def __init__(self) -> None:
        self.full = False
        self.calls = 0

    def write(self, fd: int, data) -> int:
        if self.full:
            self.calls += 1
            if self.calls == 1 and len(data) > 3:
                return REAL_WRITE(fd, bytes(data[: len(data) // 3]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return REAL_WRITE(fd, data)


SHORT = pytest.mark.parametrize("short", [one_byte, half], ids=["one-byte", "half"])


def records(lo: int, hi: int, term: int = 1) -> list[LogRecord]:
    return [LogRecord(term, i, b"payload-%d " % i * 20) for i in range(lo, hi + 1)]


def test_write_all_loops_over_short_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "write", one_byte)
    p = tmp_path / "f"
    durable_io.atomic_write(p, b"0123456789" * 10)
    assert p.read_bytes() == b"0123456789" * 10


def test_write_all_refuses_a_write_of_nothing(tmp_path):
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError):
            durable_io.write_all(fd, b"abc", lambda fd, data: 0)
    finally:
        os.close(fd)


# --- the metadata log -------------------------------------------------------------------------


@SHORT
async def test_metadata_log_short_writes_are_completed(tmp_path, monkeypatch, short: Callable):
    monkeypatch.setattr(os, "write", short)
    lg = await DiskLog.open(tmp_path, segment_bytes=2048)
    es = records(1, 40)
    for e in es:
        await lg.append([e])
    await lg.close()
    monkeypatch.undo()
    lg = await DiskLog.open(tmp_path)
    assert lg.entries(1, 40) == es
    await lg.close()


async def test_metadata_log_enospc_fails_the_batch_and_stops_the_log(tmp_path, monkeypatch):
    disk = Disk()
    monkeypatch.setattr(os, "write", disk.write)
    lg = await DiskLog.open(tmp_path)
    await lg.append(records(1, 5))
    disk.full = True
    failed = lg.append(records(6, 8))
    with pytest.raises(LogClosedError):
        await failed
    disk.full = False  # space is back, but the file's tail is unknown: the log stays stopped
    with pytest.raises(LogClosedError):
        lg.append(records(9, 9))
    await lg.close()
    monkeypatch.undo()
    lg = await DiskLog.open(tmp_path)  # the partial record is cut as a torn tail
    try:
        # Whole records written before the failure may survive (never acknowledged, as a
        # Raft entry that may or may not commit); the half-written one never does.
        last = lg.last_index
        assert lg.first_index == 1 and 5 <= last < 8
        assert lg.entries(1, last) == records(1, last)
        await lg.append(records(last + 1, last + 1, term=2))
        assert lg.entries(last + 1, last + 1) == records(last + 1, last + 1, term=2)
    finally:
        await lg.close()


# --- the hard state ---------------------------------------------------------------------------


@SHORT
def test_hard_state_short_writes_are_completed(tmp_path, monkeypatch, short: Callable):
    monkeypatch.setattr(os, "write", short)
    save_hard_state(tmp_path / "hard-state", HardState(3, "m1", 17))
    monkeypatch.undo()
    assert load_hard_state(tmp_path / "hard-state") == HardState(3, "m1", 17)


def test_hard_state_enospc_raises_and_keeps_the_old_state(tmp_path, monkeypatch):
    p = tmp_path / "hard-state"
    save_hard_state(p, HardState(3, "m1", 17))
    disk = Disk()
    disk.full = True
    monkeypatch.setattr(os, "write", disk.write)
    with pytest.raises(OSError) as err:
        save_hard_state(p, HardState(4, "m2", 20))
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC
    assert load_hard_state(p) == HardState(3, "m1", 17)
    assert [x.name for x in tmp_path.iterdir()] == ["hard-state"]


# --- snapshots --------------------------------------------------------------------------------

BODY = [b'{"line":%d}\n' % i for i in range(500)]


@SHORT
def test_snapshot_short_writes_are_completed(tmp_path, monkeypatch, short: Callable):
    monkeypatch.setattr(os, "write", short)
    store = SnapshotStore(tmp_path)
    store.write(10, 2, iter(BODY))
    monkeypatch.undo()
    found = store.latest_valid()
    assert (found.index, found.term) == (10, 2) and b"".join(store.read_lines(found)) == b"".join(BODY)


async def test_snapshot_enospc_raises_and_leaves_the_older_snapshot(tmp_path, monkeypatch):
    store = SnapshotStore(tmp_path)
    await store.save(10, 2, iter(BODY))
    disk = Disk()
    disk.full = True
    monkeypatch.setattr(os, "write", disk.write)
    with pytest.raises(OSError) as err:
        await store.save(20, 2, iter(BODY))
    monkeypatch.undo()
    assert err.value.errno == errno.ENOSPC
    assert [m.index for m in store.list()] == [10] and not list(tmp_path.glob("*.tmp"))
    assert SnapshotStore(tmp_path).latest_valid().index == 10  # after a restart too


# --- the storage node: segment group commit and blob files -------------------------------------


async def chunks(data: bytes, n: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), n):
        yield data[i : i + n]


async def put(store: BlobStore, vid: str, data: bytes) -> None:
    await store.put(BlobId(vid, 0), "b", "k", "replica:3", len(data), chunks(data))


async def read(store: BlobStore, vid: str) -> bytes:
    async with await store.open_read(BlobId(vid, 0), None, None) as r:
        return await r.read_all()


async def opened(path: Path, write: Callable | None = None) -> BlobStore:
    """A store whose segment writes go through ``write`` (blob files use ``os.write``)."""
    s = BlobStore(str(path), OPTS, **({"write": write} if write else {}))
    await s.open()
    return s


SMALL, LARGE = b"s" * 700, bytes(range(256)) * 40  # a segment record; a blob file of its own


@SHORT
async def test_storage_short_writes_are_completed(tmp_path, monkeypatch, short: Callable):
    monkeypatch.setattr(os, "write", short)
    s = await opened(tmp_path, short)
    await put(s, "small", SMALL)
    await put(s, "large", LARGE)
    assert await read(s, "small") == SMALL and await read(s, "large") == LARGE
    await s.close()
    monkeypatch.undo()
    s = await opened(tmp_path)
    try:
        assert await read(s, "small") == SMALL and await read(s, "large") == LARGE
    finally:
        await s.close()


@pytest.mark.parametrize("kind", ["segment", "blob-file"])
async def test_storage_enospc_acknowledges_nothing_and_serves_nothing_half_written(tmp_path, monkeypatch, kind):
    data = SMALL if kind == "segment" else LARGE
    disk = Disk()
    s = await opened(tmp_path, disk.write)
    await put(s, "before", data)
    monkeypatch.setattr(os, "write", disk.write)
    disk.full = True
    with pytest.raises(InsufficientStorage, match="no space"):
        await put(s, "failed", data)
    assert s.index.get(BlobId("failed", 0)) is None
    disk.full = False
    await s.close()
    monkeypatch.undo()
    s = await opened(tmp_path)
    try:
        assert sorted(b.version_id for b in s.index.snapshot()) == ["before"]
        assert await read(s, "before") == data
        assert not [p for p in tmp_path.rglob("*.tmp-*")]
    finally:
        await s.close()


# --- file modes: the metadata files carry S3 secrets (credentials in the state machine) --------


@pytest.fixture
def open_umask():
    """A umask that hides nothing, so the mode a file is created with is what it gets."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_durable_files_are_created_private(tmp_path, open_umask):
    durable_io.write_file(tmp_path / "plain", [b"secret"])
    durable_io.atomic_write(tmp_path / "replaced", b"secret")
    assert mode(tmp_path / "plain") == 0o600 and mode(tmp_path / "replaced") == 0o600


def test_atomic_write_does_not_reuse_a_stale_temporary(tmp_path, open_umask):
    """A temporary left by a crash (or an older version) keeps its mode if truncated."""
    stale = tmp_path / "hard-state.tmp"
    stale.write_bytes(b"half")
    stale.chmod(0o644)
    save_hard_state(tmp_path / "hard-state", HardState(3, "m1", 17))
    assert mode(tmp_path / "hard-state") == 0o600


async def test_metadata_log_segments_and_snapshots_are_private(tmp_path, open_umask):
    lg = await DiskLog.open(tmp_path / "log", segment_bytes=2048)
    for e in records(1, 40):
        await lg.append([e])
    await lg.close()
    segments = list((tmp_path / "log").iterdir())
    assert len(segments) > 1 and {mode(p) for p in segments} == {0o600}
    store = SnapshotStore(tmp_path / "snapshots")
    found = store.write(10, 2, iter(BODY))
    save_hard_state(tmp_path / "hard-state", HardState(3, "m1", 17))
    assert mode(found.path) == 0o600 and mode(tmp_path / "hard-state") == 0o600


async def test_a_received_snapshot_is_private(tmp_path, open_umask):
    from metadata.raft import Message, MessageType, Snapshot, SnapshotMeta
    from metadata.replication.transport import SnapshotReceiver

    sent = SnapshotStore(tmp_path / "leader").write(10, 2, iter(BODY))
    data = sent.path.read_bytes()
    (tmp_path / "incoming").mkdir()
    receiver = SnapshotReceiver(tmp_path / "incoming", SnapshotStore(tmp_path / "snapshots"))
    m = Message(MessageType.SNAP, "m2", "m1", term=2, snapshot=Snapshot(SnapshotMeta(10, 2), None))
    half = len(data) // 2
    assert await receiver.chunk(m, 0, len(data), False, data[:half]) is None
    path = await receiver.chunk(m, half, len(data), True, data[half:])
    assert path is not None and path.read_bytes() == data and mode(path) == 0o600


async def test_a_new_raft_dir_is_made_durable_in_its_parent(tmp_path, monkeypatch):
    """``raft/`` holds every durable file of a node; its entry in the data dir must survive a
    crash before anything is acknowledged (a vote, an entry)."""
    from metadata.storage.recovery import open_storage

    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    data_dir = tmp_path / "m1"
    data_dir.mkdir()
    opened = await open_storage(data_dir, {"m1": "127.0.0.1:1"}, join=False)
    await opened.storage.close()
    assert str(data_dir) in synced


def test_a_snapshot_whose_rename_fails_leaves_no_temporary(tmp_path, monkeypatch):
    store = SnapshotStore(tmp_path)

    def fail(src, dst):
        raise OSError(errno.EIO, "rename failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        store.write(10, 2, iter(BODY))
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
