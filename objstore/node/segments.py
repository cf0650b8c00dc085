"""Segment (volume) files: many small records appended to one file, and their recovery scan.

Synchronous file IO only; the store runs these calls on its executors, never on the loop.

Invariants:
- Segments are ``segments/seg-NNNNNNNN.dat``, numbered upwards; only the highest-numbered
  (the active one) is appended to. A segment is rolled over only after its last batch was
  made durable, so a crash can tear only the active segment's tail.
- ``append_batch`` writes whole records (short writes retried:
  :func:`objstore.durable_io.write_all`) then makes them durable with one ``fdatasync``; if
  anything fails (ENOSPC, EIO) the error reaches every waiter of the batch and the file is
  cut back to its previous length, so no partial record is ever followed by later records.
- ``scan_segment`` cuts nothing itself; it reports the records whose header and footer
  are valid and where the valid data ends. A damaged stretch followed by valid records is
  skipped (those records stay indexed); a damaged stretch at the end is the torn tail.
- A record appended with a preassigned ``seq`` (compaction copying a live record) is the
  same bytes as the original: the copy and the original are interchangeable.
- Read descriptors are an LRU of at most ``max_open_readers`` (:class:`ReaderCache`); a
  descriptor in use by a read is pinned and only closed once released, so a read started
  before a segment was compacted away finishes from the unlinked file.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from objstore.checksum import xxh64
from objstore.durable_io import fsync_dir, write_all
from objstore.errors import CorruptBlob
from objstore.node.blob import (
    FIXED_SIZE,
    FOOTER_SIZE,
    MAGIC,
    MAX_HEADER_SIZE,
    BlobHeader,
    Footer,
    block_span,
    decode_footer,
    decode_header,
    record_length,
    verify_block,
)
from objstore.node.index import Location

log = logging.getLogger(__name__)

SEGMENT_DIR = "segments"
_SEGMENT_RE = re.compile(r"^seg-(\d{8})\.dat$")


def segment_name(number: int) -> str:
    return f"{SEGMENT_DIR}/seg-{number:08d}.dat"


@dataclass(frozen=True, slots=True)
class ScannedRecord:
    header: BlobHeader
    header_xxh: int
    footer: Footer
    location: Location


@dataclass(slots=True)
class SegmentScan:
    records: list[ScannedRecord] = field(default_factory=list)
    valid_end: int = 0  # where the torn tail (if any) starts
    file_size: int = 0
    damaged: int = 0  # bytes skipped in the middle


def _try_record(fd: int, pos: int, file_size: int, rel: str) -> ScannedRecord | None:
    """Decode the record at ``pos`` if its header and footer are valid and it fits the file."""
    head = os.pread(fd, min(MAX_HEADER_SIZE, file_size - pos), pos)
    try:
        header, hlen, hxxh = decode_header(head)
        length = record_length(hlen, header.size, header.block_size)
        if pos + length > file_size:
            return None
        footer = decode_footer(os.pread(fd, FOOTER_SIZE, pos + length - FOOTER_SIZE), hxxh, header.size)
    except CorruptBlob:
        return None
    return ScannedRecord(header, hxxh, footer, Location(rel, pos, hlen, length))


def data_verifies(fd: int, rec: ScannedRecord) -> bool:
    """True when every block and the whole-data checksum of a record verify."""
    h = rec.header
    raw = os.pread(fd, h.stored_data_size, rec.location.data_offset)
    return _blocks_verify(raw, rec)


def _blocks_verify(raw: bytes | memoryview, rec: ScannedRecord) -> bool:
    h = rec.header
    if len(raw) != h.stored_data_size:
        return False
    chunks = []
    try:
        for i in range(h.n_blocks):
            off, ln = block_span(h.size, h.block_size, i)
            chunks.append(verify_block(memoryview(raw)[off : off + ln], i))
    except CorruptBlob:
        return False
    return xxh64(b"".join(chunks)) == rec.footer.data_xxh


def read_verified_body(fd: int, rec: ScannedRecord) -> bytes | None:
    """The record's header and blocks (all but the footer) if every block verifies, else None."""
    loc = rec.location
    raw = os.pread(fd, loc.length - FOOTER_SIZE, loc.offset)
    if len(raw) != loc.length - FOOTER_SIZE or not _blocks_verify(memoryview(raw)[loc.header_len :], rec):
        return None
    return raw


def _next_magic(fd: int, start: int, file_size: int) -> int:
    """Offset of the next record magic at or after ``start``, or -1."""
    pos = start
    window = 1 << 20
    while pos < file_size:
        buf = os.pread(fd, min(window, file_size - pos), pos)
        i = buf.find(MAGIC)
        if i >= 0:
            return pos + i
        if len(buf) < len(MAGIC):
            return -1
        pos += len(buf) - (len(MAGIC) - 1)
    return -1


def scan_segment(path: str, rel: str, verify_data: bool) -> SegmentScan:
    """Find the committed records of a segment file (see the module invariants).

    With ``verify_data`` every block is checked too, and records at the end whose data does
    not verify are treated as part of the torn tail (they were never acknowledged).
    """
    scan = SegmentScan()
    fd = os.open(path, os.O_RDONLY)
    try:
        file_size = os.fstat(fd).st_size
        scan.file_size = file_size
        pos = 0
        good_end = 0  # end of the last record that verified fully
        bad_tail: list[ScannedRecord] = []
        while pos + FIXED_SIZE <= file_size:
            rec = _try_record(fd, pos, file_size, rel)
            if rec is None:
                nxt = _next_magic(fd, pos + 1, file_size)
                while nxt >= 0:
                    rec = _try_record(fd, nxt, file_size, rel)
                    if rec is not None:
                        break
                    nxt = _next_magic(fd, nxt + 1, file_size)
                if rec is None:
                    break
                log.error("segment %s: %d damaged bytes at %d skipped", rel, nxt - pos, pos)
                scan.damaged += nxt - pos
                pos = nxt
            if verify_data and not data_verifies(fd, rec):
                bad_tail.append(rec)
            else:
                scan.records.extend(bad_tail)  # damage followed by good data: keep, reads will refuse it
                bad_tail = []
                scan.records.append(rec)
                good_end = pos + rec.location.length
            pos += rec.location.length
        if not verify_data:
            good_end = scan.records[-1].location.offset + scan.records[-1].location.length if scan.records else 0
        scan.valid_end = good_end
    finally:
        os.close(fd)
    return scan


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A record ready to append, all but its footer (which carries the commit seq)."""

    header: BlobHeader
    body: bytes  # header + blocks
    header_len: int
    size: int
    data_xxh: int
    header_xxh: int
    seq: int = 0  # 0: assigned at commit; else a copy keeping the original record's seq


@dataclass(frozen=True, slots=True)
class Appended:
    seq: int
    location: Location


class ReaderCache:
    """Read-only descriptors of segment files: an LRU of at most ``max_open`` idle ones.

    ``acquire`` pins a descriptor (opening it if needed) and ``release`` unpins it; only
    unpinned descriptors are closed (evicted, or ``discard``-ed when the file is removed),
    so the number open is at most ``max_open`` plus the reads in progress.
    """

    def __init__(self, data_dir: str, max_open: int) -> None:
        self.data_dir = data_dir
        self.max_open = max(1, max_open)
        self._fds: OrderedDict[str, list[int]] = OrderedDict()  # rel -> [fd, pins]
        self._doomed: dict[str, list[int]] = {}  # removed files still pinned by reads
        self._lock = threading.Lock()
        self.opened = 0

    def acquire(self, rel: str) -> int:
        """A pinned descriptor of ``rel``; raises FileNotFoundError when it is gone."""
        with self._lock:
            slot = self._fds.get(rel)
            if slot is None:
                slot = [os.open(os.path.join(self.data_dir, rel), os.O_RDONLY), 0]
                self.opened += 1
                self._fds[rel] = slot
            self._fds.move_to_end(rel)
            slot[1] += 1
            self._evict()
            return slot[0]

    def acquire_open(self, rel: str) -> int | None:
        """A pinned descriptor of ``rel`` if one is open already, else None (nothing opened)."""
        with self._lock:
            slot = self._fds.get(rel)
            if slot is None:
                return None
            self._fds.move_to_end(rel)
            slot[1] += 1
            return slot[0]

    def release(self, rel: str, fd: int) -> None:
        with self._lock:
            slot = self._fds.get(rel)
            if slot is not None and slot[0] == fd:
                slot[1] -= 1
                self._evict()
                return
            doomed = self._doomed.get(rel)
            if doomed is not None and doomed[0] == fd:
                doomed[1] -= 1
                if doomed[1] == 0:
                    os.close(fd)
                    del self._doomed[rel]

    def _evict(self) -> None:
        if len(self._fds) <= self.max_open:
            return
        for rel in [r for r, (_fd, pins) in self._fds.items() if pins == 0]:
            if len(self._fds) <= self.max_open:
                break
            os.close(self._fds.pop(rel)[0])

    def discard(self, rel: str) -> None:
        """Forget a removed file: close its descriptor now, or when its last read releases it."""
        with self._lock:
            slot = self._fds.pop(rel, None)
            if slot is None:
                return
            if slot[1] == 0:
                os.close(slot[0])
            else:
                self._doomed[rel] = slot

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._fds) + len(self._doomed)

    def close(self) -> None:
        with self._lock:
            for fd, _pins in [*self._fds.values(), *self._doomed.values()]:
                os.close(fd)
            self._fds.clear()
            self._doomed.clear()


class SegmentLog:
    """The segment files of one data dir and the append position of the active one."""

    def __init__(self, data_dir: str, max_segment_bytes: int, write: Callable[[int, bytes], int] | None = None,
                 sync: Callable[[int], None] = os.fdatasync, max_open_readers: int = 64) -> None:
        self.data_dir = data_dir
        self.max_segment_bytes = max_segment_bytes
        self._write = write
        self._sync = sync
        self.dir = os.path.join(data_dir, SEGMENT_DIR)
        os.makedirs(self.dir, exist_ok=True)
        self.readers = ReaderCache(data_dir, max_open_readers)
        self.numbers = sorted(int(m.group(1)) for n in os.listdir(self.dir) if (m := _SEGMENT_RE.match(n)))
        self.total_bytes = 0
        # Bytes appended since opened; only grows (removals do not count), updated on the
        # committer's thread once they are written.
        self.appended_bytes = 0
        self._active_fd = -1
        self._active_rel = ""
        self._active_size = 0
        self._must_roll = False
        self.fsyncs = 0
        self.records_committed = 0

    def scan_all(self) -> list[SegmentScan]:
        """Scan every segment (the active one with data verification) and cut its torn tail."""
        scans = []
        for i, number in enumerate(self.numbers):
            rel = segment_name(number)
            path = os.path.join(self.data_dir, rel)
            last = i == len(self.numbers) - 1
            scan = scan_segment(path, rel, verify_data=last)
            if last and scan.valid_end < scan.file_size:
                log.warning("segment %s: torn tail of %d bytes cut at %d", rel, scan.file_size - scan.valid_end, scan.valid_end)
                with open(path, "r+b") as f:
                    f.truncate(scan.valid_end)
                    f.flush()
                    os.fsync(f.fileno())
                scan.file_size = scan.valid_end
            self.total_bytes += scan.file_size
            scans.append(scan)
        return scans

    def open_active(self) -> None:
        """Open the highest segment for appending, creating the first one if none exists."""
        if not self.numbers:
            self._create(1)
            return
        rel = segment_name(self.numbers[-1])
        self._active_fd = os.open(os.path.join(self.data_dir, rel), os.O_WRONLY | os.O_APPEND)
        self._active_rel = rel
        self._active_size = os.fstat(self._active_fd).st_size

    def _create(self, number: int) -> None:
        rel = segment_name(number)
        fd = os.open(os.path.join(self.data_dir, rel), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fsync_dir(self.dir)
        if self._active_fd >= 0:
            os.close(self._active_fd)
        self._active_fd, self._active_rel, self._active_size = fd, rel, 0
        self.numbers.append(number)

    def append_batch(self, records: list[PendingRecord], next_seq: Callable[[], int]) -> list[Appended]:
        """Append ``records`` and make them durable with one fdatasync (see invariants)."""
        if self._must_roll or self._active_size >= self.max_segment_bytes:
            self._create(self.numbers[-1] + 1)
            self._must_roll = False
        start = self._active_size
        parts: list[bytes] = []
        out: list[Appended] = []
        pos = start
        for r in records:
            seq = r.seq or next_seq()
            footer = Footer(seq, r.size, r.data_xxh, r.header_xxh).encode()
            parts.append(r.body)
            parts.append(footer)
            length = len(r.body) + len(footer)
            out.append(Appended(seq, Location(self._active_rel, pos, r.header_len, length)))
            pos += length
        buf = memoryview(b"".join(parts))
        try:
            write_all(self._active_fd, buf, self._write)
            self._sync(self._active_fd)
        except BaseException:
            self._cut_back(start)
            raise
        self._active_size = pos
        self.total_bytes += pos - start
        self.appended_bytes += pos - start
        self.fsyncs += 1
        self.records_committed += len(records)
        return out

    def _cut_back(self, size: int) -> None:
        try:
            os.ftruncate(self._active_fd, size)
            os.fsync(self._active_fd)
        except OSError:
            # The tail may hold a partial record: never append after it. Move on to a new
            # segment; the next scan cuts or skips the damage.
            log.exception("segment %s: could not cut back to %d; rolling over", self._active_rel, size)
            self._must_roll = True

    @property
    def active_size(self) -> int:
        return self._active_size

    @property
    def active_number(self) -> int:
        return self.numbers[-1] if self.numbers else 0

    def segment_size(self, number: int) -> int:
        """Bytes of a segment file on disk (the active one's append position)."""
        if number == self.active_number:
            return self._active_size
        return os.stat(os.path.join(self.data_dir, segment_name(number))).st_size

    def remove(self, number: int) -> int:
        """Unlink a sealed segment durably (the directory is fsynced); returns its size.

        Reads in progress keep their pinned descriptor and finish from the unlinked file.
        """
        if number == self.active_number:
            raise ValueError("the active segment cannot be removed")
        rel = segment_name(number)
        path = os.path.join(self.data_dir, rel)
        size = os.stat(path).st_size
        os.unlink(path)
        fsync_dir(self.dir)
        self.numbers.remove(number)
        self.total_bytes -= size
        self.readers.discard(rel)
        return size

    def close(self) -> None:
        self.readers.close()
        if self._active_fd >= 0:
            os.close(self._active_fd)
            self._active_fd = -1
