"""Verified, ranged reads of one blob record.

Invariants:
- No byte is returned before the block holding it has verified; the header is checked
  against the index entry (same checksum, same blob id) before the first block is read.
- A ranged read touches only the blocks that hold the range.
- A segment read pins its descriptor (:class:`objstore.node.segments.ReaderCache`) until
  it is closed, so it finishes even if compaction removes the segment meanwhile.
- Reads are synchronous ``preadv`` calls, in chunks of about ``READ_CHUNK`` bytes, so
  memory per read stays bounded whatever the blob size. Opening a read (the header check
  and the first chunk) and any chunk not all in the page cache run on the store's IO pool;
  a chunk after the first whose bytes are all in the page cache is read and verified on
  the event loop (``RWF_NOWAIT``: it never waits for the disk), which spares a pool round
  trip per chunk (its wake-ups and GIL hand-overs cost more CPU than the chunk's copy
  and hashing; ``OBJSTORE_CACHED_CHUNKS=0`` sends every chunk to the pool). A small
  segment read (``CACHED_READ_LIMIT``) whose descriptor is open and whose bytes are all
  in the page cache is opened on the loop too, verified the same way.
- A chunk is read by one ``preadv`` that scatters the stored blocks: each block's data into
  its place in one contiguous buffer, each block's checksum into a separate small one. The
  data is verified where it landed and handed out as a view of that buffer: nothing is
  copied in user space between the disk and the socket.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import functools
import os
from typing import AsyncIterator, Callable

from objstore.buffers import uninitialized
from objstore.errors import CorruptBlob, InvalidRange
from objstore.checksum import unpack_u64
from objstore.node.blob import CHECKSUM_SIZE, block_span, check_block, header_matches
from objstore.node.index import Entry
from objstore.node.segments import SegmentLog

READ_CHUNK = 1024 * 1024
# Blocks one preadv can take: two buffers each (data, checksum) within the system's limit.
MAX_GROUP = max(1, (os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024) // 2)
# Segment reads this small (every read the gateway answers whole: its ranges of at most
# 256 KiB) are tried from the page cache first: their copy and hashing cost less than a
# trip to the IO pool and back (a 1 MiB chunk of a large read is served so too).
CACHED_READ_LIMIT = 256 * 1024
CACHED_READS = hasattr(os, "RWF_NOWAIT")  # off for good once the file system refuses it
CACHED_CHUNKS = os.environ.get("OBJSTORE_CACHED_CHUNKS", "1") != "0"


Pread = Callable[[int, int, int], bytes]
Preadv = Callable[[int, list, int], int]


def pread_cached(fd: int, n: int, offset: int) -> bytes:
    """``n`` bytes at ``offset`` only if the page cache holds all of them (never waits for
    the disk); raises BlockingIOError otherwise, or OSError where the file system cannot tell."""
    buf = bytearray(n)
    if os.preadv(fd, [buf], offset, os.RWF_NOWAIT) != n:
        raise BlockingIOError("not all cached")
    return bytes(buf)


def preadv_cached(fd: int, buffers: list[memoryview], offset: int) -> int:
    """``os.preadv`` that fills ``buffers`` only if the page cache holds all of their bytes;
    raises BlockingIOError otherwise (see :func:`pread_cached`)."""
    want = sum(map(len, buffers))
    if os.preadv(fd, buffers, offset, os.RWF_NOWAIT) != want:
        raise BlockingIOError("not all cached")
    return want


def check_header_bytes(raw: bytes | bytearray | memoryview, entry: Entry) -> None:
    """Raise CorruptBlob unless ``raw`` (``entry.location.header_len`` bytes read at the
    record's offset) is the header the index knows (:func:`objstore.node.blob.header_matches`:
    the same checks as decoding it and comparing, without building its fields again)."""
    h = entry.header  # its fields, not entry.blob_id: that builds and validates a BlobId
    if len(raw) != entry.location.header_len or not header_matches(raw, entry.header_xxh, h.version_id, h.shard):
        raise CorruptBlob(f"record header of {h.version_id} changed on disk")


def verify_header(fd: int, entry: Entry, pread: Pread = os.pread) -> None:
    """Raise CorruptBlob unless the record's header on disk is the one the index knows."""
    loc = entry.location
    check_header_bytes(pread(fd, loc.header_len, loc.offset), entry)


def read_block_data(fd: int, entry: Entry, first: int, last: int, start: int, end: int,
                    preadv: Preadv = os.preadv, header: memoryview | None = None) -> memoryview:
    """The verified data of blocks ``first..last`` trimmed to bytes ``start..end``, read with
    one ``preadv`` (see the module). With ``header`` (``first`` is 0: the blocks follow the
    header on disk) the record's header is read into it by the same ``preadv`` and checked
    (:func:`check_header_bytes`) before any block."""
    h = entry.header
    bs = h.block_size
    off0, _ = block_span(h.size, bs, first)
    base = first * bs
    # Not zeroed: a short read raises below, so every byte handed out was read from the disk.
    data = memoryview(uninitialized(min((last + 1) * bs, h.size) - base))
    sums = memoryview(uninitialized(CHECKSUM_SIZE * (last - first + 1)))
    spans = []
    iov: list[memoryview] = []
    for k in range(last - first + 1):
        lo = k * bs
        span = data[lo: lo + min(bs, len(data) - lo)]
        spans.append(span)
        iov += (span, sums[k * CHECKSUM_SIZE: (k + 1) * CHECKSUM_SIZE])
    if header is not None:
        # One preadv from the record's start: the header, then the blocks right after it.
        assert first == 0 and len(spans) < MAX_GROUP, "a header is read along with fewer than MAX_GROUP blocks from the first"
        iov.insert(0, header)
        got = preadv(fd, iov, entry.location.offset)
        if got < len(header):
            raise CorruptBlob(f"record header of {h.version_id} truncated on disk")
        check_header_bytes(header, entry)  # before any block: a moved record says so first
        if got != sum(map(len, iov)):
            raise CorruptBlob(f"record of {h.version_id} truncated on disk")
    else:
        at = entry.location.data_offset + off0
        for k in range(0, len(spans), MAX_GROUP):  # blocks are contiguous on disk: one preadv per MAX_GROUP
            part = iov[2 * k: 2 * (k + MAX_GROUP)]
            if preadv(fd, part, at + k * (bs + CHECKSUM_SIZE)) != sum(map(len, part)):
                raise CorruptBlob(f"record of {h.version_id} truncated on disk")
    for k, span in enumerate(spans):
        check_block(span, unpack_u64(sums, k * CHECKSUM_SIZE), first + k)
    return data[max(start - base, 0): min(end + 1 - base, len(data))]


def read_blocks(fd: int, entry: Entry, first: int, last: int, start: int, end: int) -> bytes:
    """The verified data of blocks ``first..last`` trimmed to bytes ``start..end``."""
    return bytes(read_block_data(fd, entry, first, last, start, end))


def resolve_range(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Clamp a requested inclusive range to the blob; raises InvalidRange if unsatisfiable.

    ``(None, None)`` is the whole blob; a missing start or end is open-ended.
    """
    if start is None and end is None:
        return 0, size - 1
    start = 0 if start is None else start
    end = size - 1 if end is None else min(end, size - 1)
    if start < 0 or start >= size or start > end:
        raise InvalidRange(f"range {start}-{end} not satisfiable for {size} bytes", ActualObjectSize=size)
    return start, end


class BlobRead:
    """An open read: ``size`` (whole blob), ``start``/``end``/``length`` of the range served."""

    def __init__(self, entry: Entry, start: int, end: int, fd: int, release: Callable[[int], None],
                 pool: concurrent.futures.Executor) -> None:
        self.entry = entry
        self.header = entry.header
        self.size = entry.header.size
        self.start, self.end = start, end
        self.length = end - start + 1
        self._fd, self._release, self._pool = fd, release, pool
        self._group = max(1, min(READ_CHUNK // entry.header.block_size, MAX_GROUP))  # one preadv each
        self._next_block = start // entry.header.block_size
        self._last_block = end // entry.header.block_size if self.length > 0 else -1
        self._first: memoryview | None = None
        self._reading: concurrent.futures.Future[memoryview] | None = None  # a group on the IO pool

    def _take_group(self) -> tuple[int, int]:
        first = self._next_block
        last = min(self._last_block, first + self._group - 1)
        self._next_block = last + 1
        return first, last

    def _prime_sync(self, pread: Pread = os.pread, preadv: Preadv = os.preadv) -> None:
        """Verify the header and read the first chunk (before any response is started): one
        ``preadv`` for both when the chunk starts at the first block (a small read's case)."""
        if self.length > 0 and self._next_block == 0:
            first, last = self._take_group()
            if last - first + 1 < MAX_GROUP:
                header = memoryview(uninitialized(self.entry.location.header_len))
                self._first = read_block_data(self._fd, self.entry, first, last, self.start, self.end, preadv, header)
                return
            self._next_block = first  # too many blocks for one preadv with the header
        verify_header(self._fd, self.entry, pread)
        self._first = read_block_data(self._fd, self.entry, *self._take_group(), self.start, self.end, preadv) \
            if self.length > 0 else memoryview(b"")

    def whole(self) -> memoryview | None:
        """The range's verified bytes when the first chunk (read when the read was opened)
        holds all of them, else None (read them with :meth:`chunks`)."""
        if self._first is not None and self._next_block > self._last_block:
            first, self._first = self._first, None
            return first
        return None

    async def _read_next(self) -> memoryview:
        group = self._take_group()
        if CACHED_CHUNKS and CACHED_READS:
            cached = self._read_cached(*group)
            if cached is not None:
                return cached
        self._reading = self._pool.submit(read_block_data, self._fd, self.entry, *group, self.start, self.end)
        return await asyncio.wrap_future(self._reading)

    def _read_cached(self, first: int, last: int) -> memoryview | None:
        """Blocks ``first..last`` read and verified on the loop if the page cache holds all
        of them; None to read them on the IO pool."""
        global CACHED_READS
        try:
            return read_block_data(self._fd, self.entry, first, last, self.start, self.end, preadv_cached)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                CACHED_READS = False
                return None
            raise

    async def chunks(self) -> AsyncIterator[memoryview]:
        """Yield the range's verified bytes (views of the buffers they were read into); raises
        CorruptBlob at the first bad block."""
        if self._first:
            first, self._first = self._first, None
            yield first
        while self._next_block <= self._last_block:
            yield await self._read_next()

    async def read_all(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    def close(self) -> None:
        """Release the descriptor; a read closed (its sender cancelled) while a group is still
        being read on the IO pool releases it when that read returns, so the thread never reads
        a descriptor number closed under it (and perhaps reused for another file)."""
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        reading, self._reading = self._reading, None
        if reading is not None and not reading.done():
            reading.add_done_callback(lambda _: self._release(fd))  # on the pool's thread: release is thread-safe
        else:
            self._release(fd)

    async def __aenter__(self) -> "BlobRead":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def open_blob_read(entry: Entry, start: int | None, end: int | None, segments: SegmentLog,
                         data_dir: str, pool: concurrent.futures.Executor) -> BlobRead:
    """Open and prime a read of ``entry``; raises InvalidRange, CorruptBlob, FileNotFoundError."""
    size = entry.header.size
    if size == 0 and (start is not None or end is not None):
        raise InvalidRange("range not satisfiable for an empty blob", ActualObjectSize=0)
    s, e = resolve_range(size, start, end) if size else (0, -1)
    rel = entry.location.file
    if entry.in_own_file:
        path = os.path.join(data_dir, rel)
        acquire: Callable[[], int] = lambda: os.open(path, os.O_RDONLY)  # noqa: E731
        release: Callable[[int], None] = os.close
    else:
        acquire = functools.partial(segments.readers.acquire, rel)
        release = functools.partial(segments.readers.release, rel)

    def open_and_prime() -> BlobRead:
        # One trip to the IO pool for opening, the header check and the first chunk: a small
        # read is then served without going back to it.
        read = BlobRead(entry, s, e, acquire(), release, pool)
        try:
            read._prime_sync()
        except BaseException:
            read.close()
            raise
        return read

    if CACHED_READS and not entry.in_own_file and e - s < CACHED_READ_LIMIT:
        read = _prime_from_cache(entry, s, e, segments, pool)
        if read is not None:
            return read
    fut = asyncio.get_running_loop().run_in_executor(pool, open_and_prime)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        fut.add_done_callback(_close_opened)  # the caller went away: release what it opened
        raise


def _prime_from_cache(entry: Entry, start: int, end: int, segments: SegmentLog,
                      pool: concurrent.futures.Executor) -> BlobRead | None:
    """A small segment read primed on the loop itself when its descriptor is open and every
    byte it needs is in the page cache (no trip to the IO pool); None to go the usual way."""
    global CACHED_READS
    rel = entry.location.file
    fd = segments.readers.acquire_open(rel)
    if fd is None:
        return None
    read = BlobRead(entry, start, end, fd, functools.partial(segments.readers.release, rel), pool)
    try:
        read._prime_sync(pread_cached, preadv_cached)
        return read
    except BlockingIOError:
        read.close()
        return None
    except OSError as exc:  # the file system does not take RWF_NOWAIT: stop trying
        read.close()
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            CACHED_READS = False
        return None
    except BaseException:
        read.close()
        raise


def _close_opened(fut: asyncio.Future) -> None:
    if not fut.cancelled() and fut.exception() is None:
        fut.result().close()
