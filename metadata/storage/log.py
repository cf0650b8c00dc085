"""The durable, append-only log of a metadata node, with group commit.

Entries carry a term and an index like a Raft log; records are checksummed in segment
files (format and recovery in :mod:`metadata.storage.log_format`).

Group commit: one writer task owns the files. Every append that arrives while the previous
write+fsync runs is queued; the writer takes the whole queue, writes it as one buffer and
makes it durable with ONE fsync, then resolves all its futures together.

Invariants:
- The logical log (``first_index..last_index``, ``term_at``, ``entries``) changes at the
  moment ``append``/``truncate_suffix``/``reset`` are called; the disk follows in the same
  order. ``durable_index`` is the last index known to be on disk.
- The future of an append resolves only after its records are fully written (short
  writes are retried, :func:`objstore.durable_io.write_all`) and fsynced. A failed write or
  fsync (ENOSPC, EIO, ...) fails the futures of the whole batch and of everything queued,
  and the log refuses every later operation until it is reopened (fail-stop: the file's
  tail is unknown; on open a partial record is cut as a torn tail).
- Segment files are created with mode ``0o600`` (:data:`objstore.durable_io.FILE_MODE`):
  commands carry S3 secrets.
- On open a torn tail is cut off (never replayed); damage before the tail raises
  :class:`~metadata.storage.log_format.CorruptLogError`.
- ``compact(i)`` only deletes whole segments whose entries are all ``<= i`` (never the
  last one); entries at or below ``i`` may remain readable.
- Threads: the writer thread (a :class:`~objstore.commit_thread.CommitThread` of the log's
  own) touches only the files and the physical index (``_segments``, under ``_lock``); the
  logical log and the futures belong to the event loop thread. With ``inline`` the writes
  and fsyncs run on the loop's thread itself (see ``__init__``).
- Preallocation: the newest segment is zero-filled ahead of its records (up to
  :data:`PREALLOCATE_BYTES`, made durable with a full ``fsync`` when it is written, off an
  append's way when possible), so a batch overwrites blocks that already exist and its
  ``fdatasync`` has no file size to record: no journal commit of the file system, which
  on ext4 is shared by every process fsyncing on it (see docs/architecture.md, "Preallocated
  log tail", for what it saved on a shared machine). Zeros
  after the last record read as a torn tail of nothing: a reader cuts them (an older
  version does, with a warning); this one keeps them as room. A segment is trimmed to its
  records before the next one is created and on ``close``, so sealed segments and the
  files of a stopped log end at their last record. A truncated suffix is cut with
  ``ftruncate`` as before (never overwritten in place: stale records after the new tail
  could read as valid), and the room is refilled with zeros. A failed preallocation (a disk
  nearly full) fails nothing: records are appended past the room, as before, and room is
  tried again a minute later.
"""
from __future__ import annotations

import asyncio
import bisect
import logging
import os
import threading
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from metadata import latency_trace
from metadata.storage import log_format as fmt
from objstore.commit_thread import CommitThread
from objstore.durable_io import FILE_MODE, fsync_dir, write_all

log = logging.getLogger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
# Zero-filled room kept ahead of the newest segment's records (see the module docstring).
PREALLOCATE_BYTES = 1 << 20
PREALLOCATE_RETRY_SECONDS = 60.0  # after a failed preallocation (a disk nearly full)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of the log: its term, index and opaque payload."""

    term: int
    index: int
    payload: bytes


class _Segment:
    """One segment file: where each of its records starts and its term."""

    __slots__ = ("first_index", "path", "terms", "offsets", "size", "allocated")

    def __init__(self, first_index: int, path: Path, terms: list[int], offsets: list[int], size: int,
                 allocated: int = 0) -> None:
        self.first_index = first_index
        self.path = path
        self.terms = array("Q", terms)
        self.offsets = array("Q", offsets)
        self.size = size  # bytes of the header and the records
        self.allocated = max(size, allocated)  # bytes of the file: the records, then zeros

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.offsets) - 1


def _appended(batch: "list[tuple[str, Any, asyncio.Future]]") -> int:
    """Entries the appends of a writer batch hold."""
    return sum(len(arg) for op, arg, _ in batch if op == "append")


def _zeros(data: bytes, start: int) -> bool:
    """Whether ``data`` holds only zero bytes from ``start`` on."""
    return data.count(b"\0", start) == len(data) - start


class LogClosedError(Exception):
    """The log was closed, or a write failed and the log stopped."""


class DiskLog:
    """A durable log in ``directory``; create with :meth:`open`."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.dir = directory
        self.segment_bytes = segment_bytes
        self._segments: list[_Segment] = []  # on disk, ascending
        self._fd: int | None = None  # the last segment, open for appending
        self.first_index = 1
        self._terms = array("Q")  # logical: term of first_index + i
        self._unstable: dict[int, LogRecord] = {}  # appended, not yet durable
        self.durable_index = 0
        self._queue: list[tuple[str, Any, asyncio.Future]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._failed: BaseException | None = None
        self._io_failed = False  # a write or fsync failed: the files' tails are unknown
        self._prealloc_retry_at = 0.0  # monotonic time before which no preallocation is tried
        self._generation = 0  # bumped by reset, to drop stale compaction results
        self._lock = threading.Lock()  # guards the physical index (_segments) across threads
        self.fsyncs = 0  # batches made durable (for metrics)
        self.on_fsync: Callable[[int, float], None] | None = None  # (entries, seconds of write + fsync), in the writer thread
        self.appended = 0  # entries made durable
        # Write and fsync on the event loop's thread instead of the default executor: two
        # thread hand-overs less per batch, but the loop stalls meanwhile. For a Raft
        # follower, whose loop has nothing better to do than wait for the entries it must
        # acknowledge, and for a leader's small batches (few clients: the hand-overs were
        # most of its part of a commit); a leader's large batches (many clients) keep the
        # thread, so that it reads and proposes the next batch during this one's fsync.
        self.inline = False
        self.inline_max_entries: int | None = None  # with ``inline``: larger batches use the thread
        self._thread = CommitThread("log-writer")  # the writer's batches and preallocations, in order

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, directory: Path, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> "DiskLog":
        """Open (or create) the log, cutting a torn tail; raises CorruptLogError."""
        self = cls(directory, segment_bytes)
        await asyncio.get_running_loop().run_in_executor(None, self._recover)
        self._writer = asyncio.create_task(self._write_loop(), name=f"disklog-writer {directory}")
        return self

    def _recover(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        found = sorted((i, p) for p in self.dir.iterdir() if (i := fmt.parse_segment_name(p.name)) is not None)
        expected: int | None = None
        for n, (first, path) in enumerate(found):
            if expected is not None and first != expected:
                raise fmt.CorruptLogError(f"segment {path.name} does not follow index {expected - 1}")
            is_last = n == len(found) - 1
            data = path.read_bytes()
            scan = fmt.scan_segment(data, first, is_last, path.name)
            allocated = scan.valid_end
            if scan.torn and scan.valid_end >= fmt.SEGMENT_HEADER.size and _zeros(data, scan.valid_end):
                allocated = len(data)  # preallocated room after the last record, not a torn write
            elif scan.torn:
                log.warning("cutting torn tail of %s at offset %d", path.name, scan.valid_end)
                if scan.valid_end == 0:
                    path.unlink()
                    fsync_dir(self.dir)
                    continue
                with open(path, "r+b") as f:
                    f.truncate(scan.valid_end)
                    os.fsync(f.fileno())
            self._segments.append(_Segment(first, path, scan.terms, scan.offsets, scan.valid_end, allocated))
            expected = first + len(scan.offsets)
        if self._segments:
            self.first_index = self._segments[0].first_index
            for seg in self._segments:
                self._terms.extend(seg.terms)
            self._open_last()
        self.durable_index = self.last_index

    # --- the logical log -------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self.first_index + len(self._terms) - 1

    @property
    def last_term(self) -> int:
        return self._terms[-1] if self._terms else 0

    def term_at(self, index: int) -> int:
        """The term of entry ``index``; raises IndexError outside first_index..last_index."""
        if not self.first_index <= index <= self.last_index:
            raise IndexError(f"index {index} outside the log {self.first_index}..{self.last_index}")
        return self._terms[index - self.first_index]

    def entries(self, lo: int, hi: int) -> list[LogRecord]:
        """Entries ``lo..hi`` inclusive (reads the disk for durable ones)."""
        if lo > hi:
            return []
        if lo < self.first_index or hi > self.last_index:
            raise IndexError(f"entries {lo}..{hi} outside the log {self.first_index}..{self.last_index}")
        out: list[LogRecord] = []
        files: dict[Path, Any] = {}
        try:
            for i in range(lo, hi + 1):
                e = self._unstable.get(i)
                if e is None:
                    path, offset = self._locate(i)
                    f = files.get(path) or files.setdefault(path, open(path, "rb"))
                    f.seek(offset)
                    head = f.read(fmt.RECORD_HEADER.size)
                    n, term, index, _ = fmt.RECORD_HEADER.unpack(head)
                    e = LogRecord(term, index, f.read(n))
                out.append(e)
        finally:
            for f in files.values():
                f.close()
        return out

    def _locate(self, index: int) -> tuple[Path, int]:
        with self._lock:
            k = bisect.bisect_right([s.first_index for s in self._segments], index) - 1
            if k < 0 or index > self._segments[k].last_index:
                raise IndexError(f"entry {index} is not on disk")
            seg = self._segments[k]
            return seg.path, seg.offsets[index - seg.first_index]

    def append(self, entries: list[LogRecord]) -> asyncio.Future:
        """Append entries (indexes must continue the log); the future resolves when durable."""
        if self._failed is not None:
            raise LogClosedError(f"log stopped: {self._failed}")
        if not entries:
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(None)
            return fut
        nxt = self.last_index + 1
        for e in entries:
            if e.index != nxt:
                raise ValueError(f"append of index {e.index}, expected {nxt}")
            nxt += 1
        for e in entries:
            self._terms.append(e.term)
            self._unstable[e.index] = e
        return self._enqueue("append", entries)

    def truncate_suffix(self, from_index: int) -> asyncio.Future:
        """Remove entries ``>= from_index`` (a Raft follower's conflicting suffix)."""
        if from_index < self.first_index:
            raise IndexError(f"cannot truncate below the first index {self.first_index}")
        del self._terms[from_index - self.first_index :]
        for i in [i for i in self._unstable if i >= from_index]:
            del self._unstable[i]
        return self._enqueue("truncate", from_index)

    def compact(self, up_to_index: int) -> asyncio.Future:
        """Delete whole segments whose entries are all ``<= up_to_index`` (after a snapshot)."""
        return self._enqueue("compact", (up_to_index, self._generation))

    def reset(self, next_index: int) -> asyncio.Future:
        """Drop the whole log; the next append must have ``next_index`` (after InstallSnapshot)."""
        self._terms = array("Q")
        self._unstable.clear()
        self.first_index = next_index
        self._generation += 1
        return self._enqueue("reset", next_index)

    def disk_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._segments)

    async def close(self) -> None:
        """Finish queued work, then close the files; later calls raise LogClosedError."""
        if self._writer is not None:
            if self._failed is None:
                await asyncio.gather(self._enqueue("stop", None), return_exceptions=True)
            self._failed = self._failed or LogClosedError("log closed")
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
            for _, _, fut in self._queue:
                if not fut.done():
                    fut.set_exception(LogClosedError("log closed"))
            self._queue = []
        self._thread.shutdown(wait=True)  # nothing is queued on it once the writer has ended
        if self._fd is not None:
            try:
                if not self._io_failed:
                    self._trim()  # the files of a stopped log end at their last record
            except OSError as exc:
                log.warning("could not trim the preallocated tail of the log: %s", exc)
            finally:
                os.close(self._fd)
                self._fd = None

    # --- the writer ------------------------------------------------------------------------

    def _enqueue(self, op: str, arg: Any) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if self._failed is not None:
            fut.set_exception(LogClosedError(f"log stopped: {self._failed}"))
            return fut
        self._queue.append((op, arg, fut))
        self._wakeup.set()
        return fut

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            try:
                if self.inline and (self.inline_max_entries is None or _appended(batch) <= self.inline_max_entries):
                    results = self._do_batch(batch)
                else:
                    results = await self._thread.run(self._do_batch, batch)
            except Exception as exc:  # noqa: BLE001 - any IO failure stops the log
                self._stop_on_io_error(exc, batch)
                return
            stop = False
            for (op, arg, fut), result in zip(batch, results):
                if op == "append":
                    for e in arg:
                        if self._unstable.get(e.index) is e:
                            del self._unstable[e.index]
                    self.durable_index = arg[-1].index
                elif op == "truncate":
                    self.durable_index = min(self.durable_index, arg - 1)
                elif op == "reset":
                    self.durable_index = arg - 1
                elif op == "compact" and result is not None and arg[1] == self._generation:
                    if result > self.first_index:
                        del self._terms[: result - self.first_index]
                        self.first_index = result
                elif op == "stop":
                    stop = True
                if not fut.done():
                    fut.set_result(None)
            if stop:
                self._failed = LogClosedError("log closed")
                return
            if not self._queue and self._room_low():
                # Zero-fill more room now, while nothing waits for the disk (a thread either
                # way: this is not on an acknowledgement's way).
                await self._thread.run(self._try_preallocate, 0)

    def _stop_on_io_error(self, exc: Exception, batch: list[tuple[str, Any, asyncio.Future]]) -> None:
        log.error("durable log write failed, stopping the log: %s", exc)
        self._failed = exc
        self._io_failed = True
        for _, _, fut in batch + self._queue:
            if not fut.done():
                fut.set_exception(LogClosedError(f"log write failed: {exc}"))
        self._queue = []

    def _room_low(self) -> bool:
        """Whether the newest segment has less than half a preallocation of zeros left."""
        if not self._segments or self._fd is None or time.monotonic() < self._prealloc_retry_at:
            return False
        seg = self._segments[-1]
        return seg.allocated - seg.size < self._prealloc_chunk() // 2

    def _prealloc_chunk(self) -> int:
        return min(PREALLOCATE_BYTES, self.segment_bytes)

    def _try_preallocate(self, need_end: int) -> None:
        """:meth:`_preallocate`, which only saves time: when it fails (a disk nearly full),
        records are appended past the room as before, and it is tried again a minute later."""
        if time.monotonic() < self._prealloc_retry_at:
            return
        try:
            self._preallocate(need_end)
        except OSError as exc:
            log.warning("could not preallocate log space (appending without it for a minute): %s", exc)
            self._prealloc_retry_at = time.monotonic() + PREALLOCATE_RETRY_SECONDS

    def _preallocate(self, need_end: int) -> None:
        """Zero-fill the newest segment past ``need_end`` and past its records by at least a
        chunk, durably (``fsync``: the file's size changes)."""
        seg = self._segments[-1]
        assert self._fd is not None
        end = max(need_end, seg.size) + self._prealloc_chunk()
        if end <= seg.allocated:
            return
        start = max(seg.allocated, seg.size)  # never over records (appended past the room)
        seg.allocated = end  # before writing: a failed fill may have left zeros up to here (see _trim)
        os.lseek(self._fd, start, os.SEEK_SET)
        write_all(self._fd, bytes(end - start))
        os.fsync(self._fd)

    def _trim(self) -> None:
        """Cut the newest segment's zeros after its records (durably)."""
        seg = self._segments[-1] if self._segments else None
        if seg is None or self._fd is None or os.fstat(self._fd).st_size <= seg.size:
            return
        os.ftruncate(self._fd, seg.size)
        os.fsync(self._fd)
        seg.allocated = seg.size

    def _open_last(self) -> None:
        """Open the newest segment for writing at the end of its records."""
        seg = self._segments[-1]
        self._fd = os.open(seg.path, os.O_WRONLY)
        os.lseek(self._fd, seg.size, os.SEEK_SET)

    def _do_batch(self, batch: list[tuple[str, Any, asyncio.Future]]) -> list[Any]:
        """Runs in a thread: apply queued ops in order; appends in a row share one fsync.

        Touches only the files and the physical index (under ``_lock``); the loop thread
        updates the logical log from the returned per-op results.
        """
        results: list[Any] = []
        pending: list[LogRecord] = []
        for op, arg, _ in batch:
            result = None
            if op == "append":
                pending.extend(arg)
            else:
                self._write_entries(pending)
                pending = []
                if op == "truncate":
                    self._truncate(arg)
                elif op == "compact":
                    result = self._compact(arg[0])
                elif op == "reset":
                    self._reset()
            results.append(result)
        self._write_entries(pending)
        return results

    def _write_entries(self, entries: list[LogRecord]) -> None:
        if not entries:
            return
        seg = self._segments[-1] if self._segments else None
        if seg is None or (seg.size >= self.segment_bytes and seg.offsets):
            seg = self._new_segment(entries[0].index)
        buf = bytearray()
        offsets, terms = [], []
        for e in entries:
            offsets.append(seg.size + len(buf))
            terms.append(e.term)
            buf += fmt.encode_record(e.term, e.index, e.payload)
        assert self._fd is not None
        started = time.perf_counter()
        if seg.size + len(buf) > seg.allocated:
            self._try_preallocate(seg.size + len(buf))
        os.lseek(self._fd, seg.size, os.SEEK_SET)
        latency_trace.event("Ws", entries[-1].index)
        write_all(self._fd, buf)
        os.fdatasync(self._fd)
        latency_trace.event("We", entries[-1].index)
        if self.on_fsync is not None:
            self.on_fsync(len(entries), time.perf_counter() - started)
        with self._lock:
            seg.offsets.extend(offsets)
            seg.terms.extend(terms)
            seg.size += len(buf)
        self.fsyncs += 1
        self.appended += len(entries)

    def _new_segment(self, first_index: int) -> _Segment:
        if self._fd is not None:
            self._trim()  # a sealed segment ends at its last record
            os.close(self._fd)
            self._fd = None
        path = self.dir / fmt.segment_name(first_index)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        write_all(self._fd, fmt.segment_header(first_index))
        os.fsync(self._fd)
        fsync_dir(self.dir)
        seg = _Segment(first_index, path, [], [], fmt.SEGMENT_HEADER.size)
        with self._lock:
            self._segments.append(seg)
        return seg

    def _truncate(self, from_index: int) -> None:
        doomed: list[_Segment] = []
        with self._lock:
            while self._segments and self._segments[-1].first_index >= from_index:
                doomed.append(self._segments.pop())
            seg = self._segments[-1] if self._segments else None
            keep = from_index - seg.first_index if seg else 0
            if seg is not None and keep < len(seg.offsets):
                seg.size = seg.offsets[keep]
                del seg.offsets[keep:]
                del seg.terms[keep:]
        if doomed:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for d in doomed:
                d.path.unlink()
            fsync_dir(self.dir)
        if seg is not None:
            if self._fd is None:
                self._open_last()
            assert self._fd is not None
            # Cut, never overwrite: stale records past the new tail could read as valid.
            os.ftruncate(self._fd, seg.size)
            os.fsync(self._fd)
            seg.allocated = seg.size

    def _compact(self, up_to_index: int) -> int | None:
        """Delete old segments; returns the new first index, or None when nothing went."""
        doomed: list[_Segment] = []
        with self._lock:
            while len(self._segments) > 1 and self._segments[0].last_index <= up_to_index:
                doomed.append(self._segments.pop(0))
            new_first = self._segments[0].first_index
        if not doomed:
            return None
        for d in doomed:
            d.path.unlink()
        fsync_dir(self.dir)
        return new_first

    def _reset(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with self._lock:
            doomed, self._segments = self._segments, []
        for d in doomed:
            d.path.unlink()
        fsync_dir(self.dir)
