"""The durable blob store of one storage node: verified, ranged reads and durable writes.

Small blobs (``size <= small_threshold``) are appended to the active segment through the
group committer (one fdatasync for many writes); large blobs stream to a file of their
own. All file IO runs on executors: one thread for the committer, a pool for the rest.

Invariants:
- ``put`` returns only after the blob is durable and indexed; on any failure (short
  body, ENOSPC, a client gone away before commit) nothing is indexed, and the next
  start-up finds nothing of it either.
- The index is rebuilt at ``open`` from the records on disk alone; applying records
  follows the highest-seq-wins rule of :mod:`objstore.node.index`, so the live index and
  the rebuilt one agree.
- A re-PUT of an existing blob id replaces it atomically (the newer record wins); a
  DELETE appends a tombstone. Space of replaced or deleted records inside segments is
  reclaimed by compaction (:mod:`objstore.node.compaction`); superseded blob files are
  unlinked (durably: the directory is fsynced before the index forgets them).
- Reads verify the header and every block before yielding a byte (:mod:`.reader`).
- A quarantined record (:mod:`.quarantine`: found corrupt) is not in the index, live or
  rebuilt, until a newer record of its blob id replaces it; its file stays on disk until
  then, for inspection.
- Space (:meth:`BlobStore.space`): a write is admitted only if, with every write in flight,
  it leaves at least ``reserve_bytes`` free (else InsufficientStorage, 507, before a byte
  of its body is read); deletes never need admission, so tombstones may use the reserve.
  The filesystem's free space comes from a statfs at most ``SPACE_SAMPLE_SECONDS`` old (less
  what this node wrote since) while that leaves ``SPACE_SAMPLE_SLACK`` above the reserve;
  nearer the reserve, and before any refusal, from a fresh one.
  A real ENOSPC (or EDQUOT, EFBIG) from the filesystem is InsufficientStorage too, leaving
  nothing behind; a small spare file (``SPARE_FILE``) is given up to make room for a
  tombstone when the filesystem is completely full, so deletes still succeed.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import functools
import itertools
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator

from objstore.checksum import hex64, unpack_u64, xxh64
from objstore.durable_io import fsync_dir
from objstore.erasure.data_layout import DataLayout
from objstore.errors import IncompleteBody, InsufficientStorage, InternalError, InvalidArgument, NoSuchKey, ObjstoreError
from objstore.node import quarantine
from objstore.node.blob import (
    CHECKSUM_SIZE,
    DEFAULT_BLOCK_SIZE,
    KIND_BLOB,
    KIND_TOMBSTONE,
    BlobHeader,
    BlobId,
    BlockFramer,
    Footer,
    encode_blocks,
    framer_capacity,
    record_length,
)
from objstore.node.blobfiles import DIRECT_ALIGN, BlobFileWriter, blob_file_rel, scan_blob_files
from objstore.space import default_reserve
from objstore.node.framer_buffers import FramerBuffers
from objstore.commit_thread import CommitThread
from objstore.node.group_commit import GroupCommitter
from objstore.node.index import BlobIndex, Entry, Location
from objstore.node.reader import BlobRead, open_blob_read
from objstore.node.segments import Appended, PendingRecord, SegmentLog

log = logging.getLogger(__name__)

DATA_DIR_FORMAT = 1
_FORMAT_FILE = "objstore-node.json"
_LOCK_FILE = "LOCK"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
SPARE_FILE = "spare-space"  # given up when the disk is full, so a tombstone still fits
SPARE_BYTES = 1024 * 1024
# Admission checks the filesystem's free space (a statfs) at most once per
# SPACE_SAMPLE_SECONDS while the estimate leaves SPACE_SAMPLE_SLACK or more above the
# reserve: in between, the last sample less what this node wrote since. Nearer the reserve
# every write takes a fresh sample, so a write is refused only on a fresh one.
SPACE_SAMPLE_SECONDS = 1.0
SPACE_SAMPLE_SLACK = 64 * 1024 * 1024
MAX_KNOWN_POLICIES = 64  # policy strings validated once (a cluster uses a handful)
_monotonic = time.monotonic  # the clock of the statfs samples (a test sets its own)


@dataclass(frozen=True, slots=True)
class StoreOptions:
    small_threshold: int = 1024 * 1024
    block_size: int = DEFAULT_BLOCK_SIZE
    max_segment_bytes: int = 256 * 1024 * 1024
    capacity_bytes: int = 0  # 0: the size of the data dir's filesystem
    reserve_bytes: int | None = None  # None: default_reserve(capacity)
    io_threads: int = 8
    write_buffer: int = 4 * 1024 * 1024  # see _put_large: 4 MiB cut a large write's node CPU by a quarter against 1 MiB
    direct_io: bool = True  # large blob files written with O_DIRECT where the filesystem allows
    max_open_readers: int = 64  # idle segment descriptors kept open (an LRU)


@dataclass(frozen=True, slots=True)
class PutResult:
    size: int
    xxh64: str
    seq: int

    def to_dict(self) -> dict:
        return {"size": self.size, "xxh64": self.xxh64}


class BlobStore:
    def __init__(
        self,
        data_dir: str,
        options: StoreOptions = StoreOptions(),
        clock: Callable[[], float] = time.time,
        write: Callable[[int, bytes], int] = os.write,
        sync: Callable[[int], None] = os.fdatasync,
    ) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.options = options
        self._clock = clock
        self._write, self._sync = write, sync
        self.index = BlobIndex()
        self._segments: SegmentLog | None = None
        self._committer: GroupCommitter | None = None
        self._commit_pool: CommitThread | None = None
        self._io_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._seq_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._file_bytes = 0
        self._files_written = 0  # bytes of blob files committed since opened (only grows)
        self._admitted = 0  # bytes promised to writes in flight
        self._spare_missing = False  # given up (or never set aside): set it aside again when possible
        self._lock_fd = -1
        self._bg: set[asyncio.Future] = set()
        self._framer_pools: dict[int, FramerBuffers] = {}  # by framed bytes per buffer
        self.quarantined = quarantine.QuarantineList()
        self._quarantine_lock = threading.Lock()
        self._quarantine_version = 0  # of the list in memory; the file holds the one saved last
        self._quarantine_saved = 0
        self.batch_observer: Callable[[int, float], None] | None = None  # (records, seconds) per group commit
        # The last statfs: (monotonic time, total, free, _written then); see SPACE_SAMPLE_SECONDS.
        self._fs_sample: tuple[float, int, int, int] | None = None
        self._known_policies: set[str] = set()

    # --- life cycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Lock the data dir, rebuild the index from disk and start the committer."""
        self._fs_sample = None  # its byte count belongs to the segment log replaced here
        self._commit_pool = CommitThread("commit")
        self._io_pool = concurrent.futures.ThreadPoolExecutor(self.options.io_threads, thread_name_prefix="blobio")
        try:
            await asyncio.get_running_loop().run_in_executor(self._io_pool, self._open_sync)
        except BaseException:
            await self.close()
            raise
        self._committer = GroupCommitter(self._segments, self._next_seq, self._commit_pool, self._on_commit,
                                         on_batch=self._observe_batch)
        self._committer.start()

    def _observe_batch(self, records: int, seconds: float) -> None:
        if self.batch_observer is not None:
            self.batch_observer(records, seconds)

    def _open_sync(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.data_dir, _LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise InvalidArgument(f"data dir {self.data_dir} is in use by another process") from None
        self._check_format()
        self._segments = SegmentLog(self.data_dir, self.options.max_segment_bytes, self._write, self._sync,
                                    self.options.max_open_readers)
        records = [r for scan in self._segments.scan_all() for r in scan.records]
        files, self._file_bytes = scan_blob_files(self.data_dir)
        max_seq = 0
        for rec in records + files:
            max_seq = max(max_seq, rec.footer.seq)
            if rec.header.kind == KIND_TOMBSTONE:
                self.index.apply_tombstone(rec.header.blob_id, rec.footer.seq, rec.location)
            else:
                self.index.apply(Entry(rec.header, rec.header_xxh, rec.footer.data_xxh, rec.footer.seq, rec.location))
        for rec in files:  # files whose record lost to a newer one or a tombstone
            live = self.index.get(rec.header.blob_id)
            if live is None or live.seq != rec.footer.seq:
                _unlink_durably(os.path.join(self.data_dir, rec.location.file))
                self.index.forget_file(rec.location.file, [rec.header.blob_id])
                self._file_bytes -= rec.location.length
        self._seq = itertools.count(max_seq + 1)
        self._apply_quarantine()
        self._segments.open_active()
        self._keep_spare()
        log.info("store %s: %d blobs, %d segments, next seq %d", self.data_dir, len(self.index),
                 len(self._segments.numbers), max_seq + 1)

    def _apply_quarantine(self) -> None:
        """Drop the quarantined records from the rebuilt index; forget entries whose blob id
        was rewritten (repaired) or deleted meanwhile."""
        self.quarantined = quarantine.load(self.data_dir)
        changed = False
        for q in self.quarantined:
            live = self.index.get(q.blob_id)
            if live is not None and live.seq == q.seq:
                self.index.drop(live)
            elif live is not None and live.seq > q.seq:
                changed = bool(self.quarantined.resolve(q.blob_id, live.seq, repaired=True)) or changed
            else:  # deleted, or its record is gone from disk
                changed = bool(self.quarantined.forget(q.blob_id)) or changed
        if changed:
            quarantine.save(self.data_dir, self.quarantined.to_json())
        if len(self.quarantined):
            log.warning("store %s: %d quarantined (corrupt) records not served", self.data_dir, len(self.quarantined))

    def _check_format(self) -> None:
        path = os.path.join(self.data_dir, _FORMAT_FILE)
        if os.path.exists(path):
            with open(path) as f:
                fmt = json.load(f).get("format")
            if fmt != DATA_DIR_FORMAT:
                raise InvalidArgument(f"data dir format {fmt} is not supported (expected {DATA_DIR_FORMAT})")
            return
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"format": DATA_DIR_FORMAT}, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    async def close(self) -> None:
        """Commit what is queued, wait for background work, close every file."""
        if self._committer is not None:
            await self._committer.close()
            self._committer = None
        if self._bg:
            await asyncio.gather(*self._bg, return_exceptions=True)
        for pool in (self._commit_pool, self._io_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._commit_pool = self._io_pool = None
        if self._segments is not None:
            self._segments.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _next_seq(self) -> int:
        with self._seq_lock:
            return next(self._seq)

    # --- writes -------------------------------------------------------------------------

    async def put(
        self, blob_id: BlobId, bucket: str, key: str, policy: str, size: int, chunks: AsyncIterable[bytes]
    ) -> PutResult:
        """Store ``size`` bytes from ``chunks`` durably under ``blob_id``.

        Raises IncompleteBody (fewer bytes than ``size``), InvalidArgument (bad policy,
        names or more bytes than ``size``), KeyTooLongError, InsufficientStorage (before
        reading a byte when the write would eat into the reserve; on a full disk, with
        nothing left behind), or the OSError of a failed disk.
        """
        if size < 0:
            raise InvalidArgument("negative size")
        header, hbytes, need = self._new_blob(blob_id, bucket, key, policy, size)
        with self._writing(need):
            if size <= self.options.small_threshold:
                return await self._put_small(header, hbytes, chunks)
            return await self._put_large(header, hbytes, chunks)

    async def put_bytes(self, blob_id: BlobId, bucket: str, key: str, policy: str, data: bytes) -> PutResult:
        """:meth:`put` of a body already received whole (the same checks, errors and
        durability), without iterating it as chunks."""
        size = len(data)
        if size > self.options.small_threshold:
            return await self.put(blob_id, bucket, key, policy, size, _whole(data))
        header, hbytes, need = self._new_blob(blob_id, bucket, key, policy, size)
        with self._writing(need):
            blocks, dxxh = encode_blocks(data, header.block_size)
            assert self._committer is not None, "store not open"
            appended = await self._committer.submit(PendingRecord(header, hbytes + blocks, len(hbytes), size, dxxh,
                                                                  unpack_u64(hbytes, len(hbytes) - 8)))
        return PutResult(size, hex64(dxxh), appended.seq)

    @contextlib.contextmanager
    def _writing(self, need: int) -> Iterator[None]:
        """A blob write of ``need`` admitted bytes: counted as admitted while it runs; a
        full disk's OSError raised as InsufficientStorage."""
        self._admitted += need
        try:
            yield
        except OSError as exc:
            err = _space_error(exc)
            if err is exc:
                raise
            raise err from exc
        finally:
            self._admitted -= need

    def _new_blob(self, blob_id: BlobId, bucket: str, key: str, policy: str, size: int
                  ) -> tuple[BlobHeader, bytes, int]:
        """A new blob's header, its bytes and the bytes its record takes, once admitted
        (raises InvalidArgument, KeyTooLongError, InsufficientStorage)."""
        if policy not in self._known_policies:
            DataLayout.parse(policy)
            if ";size=" not in policy:  # a shard's "ec:K+M;stripe=B;size=S" names its object: not kept
                if len(self._known_policies) >= MAX_KNOWN_POLICIES:
                    self._known_policies.clear()
                self._known_policies.add(policy)
        header = BlobHeader(KIND_BLOB, blob_id.version_id, blob_id.shard, bucket, key, policy, size,
                            self.options.block_size, self._clock())
        hbytes = header.encode()
        need = record_length(len(hbytes), size, header.block_size)
        self.admit(need)
        return header, hbytes, need

    async def put_many(self, blobs: "list[tuple[BlobId, str, str, str, bytes | memoryview]]"
                       ) -> "list[PutResult | ObjstoreError]":
        """Store several blobs held in memory, each (blob id, bucket, key, policy, bytes),
        durably: the small ones handed to the group commit together (no task per blob), a
        larger one (over ``small_threshold``) through :meth:`put`. Per blob its result, or
        the error that refused or failed it (what :meth:`put` raises for it: InvalidArgument,
        KeyTooLongError, InsufficientStorage; a failed disk's error as InternalError). Each
        blob's outcome is its own: the small ones may span two group commits, and a blob
        made durable by one is reported stored even if the other failed."""
        out: list[PutResult | ObjstoreError | None] = [None] * len(blobs)
        small: list[tuple[int, PendingRecord, int]] = []  # (index, record, bytes admitted)
        large: list[tuple[int, Awaitable[PutResult]]] = []
        admitted = 0
        try:
            for i, (blob_id, bucket, key, policy, data) in enumerate(blobs):
                size = len(data)
                if size > self.options.small_threshold:
                    large.append((i, self.put(blob_id, bucket, key, policy, size, _whole(data))))
                    continue
                try:
                    header, hbytes, need = self._new_blob(blob_id, bucket, key, policy, size)
                except ObjstoreError as err:
                    out[i] = err
                    continue
                self._admitted += need
                admitted += need
                blocks, dxxh = encode_blocks(data, header.block_size)
                small.append((i, PendingRecord(header, hbytes + blocks, len(hbytes), size, dxxh,
                                               unpack_u64(hbytes, len(hbytes) - 8)), need))
            assert self._committer is not None, "store not open"
            waits: list[Awaitable[object]] = [self._committer.submit_many([r for _, r, _ in small])] if small else []
            waits += [a for _, a in large]
            if len(waits) == 1 and small:  # the usual batch, all small: no task to gather
                try:
                    outcomes: list[object] = [await waits[0]]
                except Exception as exc:  # noqa: BLE001 - as gather(return_exceptions=True) gives it
                    outcomes = [exc]
            else:
                outcomes = await asyncio.gather(*waits, return_exceptions=True)
        finally:
            self._admitted -= admitted
        if small:
            committed = outcomes[0]
            if isinstance(committed, BaseException):  # nothing was queued (closing)
                committed = [committed] * len(small)
            for (i, rec, _), appended in zip(small, committed, strict=True):  # type: ignore[arg-type]
                out[i] = _blob_error(appended) if isinstance(appended, BaseException) else \
                    PutResult(rec.size, hex64(rec.data_xxh), appended.seq)
        for (i, _), res in zip(large, outcomes[1 if small else 0:]):
            out[i] = _blob_error(res) if isinstance(res, BaseException) else res  # type: ignore[assignment]
        return out  # type: ignore[return-value]

    def admit(self, need: int) -> None:
        """Raise InsufficientStorage unless ``need`` more bytes leave the reserve free.

        Decided on the last statfs sample while it is recent and the estimate from it (less
        what this node wrote since) leaves ``SPACE_SAMPLE_SLACK`` to spare; otherwise, and
        always before refusing, on a fresh one."""
        sample = self._fs_sample
        if sample is not None and _monotonic() - sample[0] < SPACE_SAMPLE_SECONDS:
            _, total, fs_free, written_then = sample
            space = self._space(total, fs_free - (self._written - written_then), self.used_bytes)
            if space["free_bytes"] - need >= space["reserve_bytes"] + SPACE_SAMPLE_SLACK:
                return
        space = self.space()
        if space["free_bytes"] - need < space["reserve_bytes"]:
            raise InsufficientStorage(
                f"storage node is full: {need} bytes asked, {space['free_bytes']} free, "
                f"{space['reserve_bytes']} kept in reserve"
            )

    async def _put_small(self, header: BlobHeader, hbytes: bytes, chunks: AsyncIterable[bytes]) -> PutResult:
        data = await _read_exact(chunks, header.size)
        blocks, dxxh = encode_blocks(data, header.block_size)
        assert self._committer is not None, "store not open"
        appended = await self._committer.submit(
            PendingRecord(header, hbytes + blocks, len(hbytes), header.size, dxxh, unpack_u64(hbytes, len(hbytes) - 8))
        )
        return PutResult(header.size, hex64(dxxh), appended.seq)

    async def _put_large(self, header: BlobHeader, hbytes: bytes, chunks: AsyncIterable[bytes]) -> PutResult:
        """Stream a large blob to a file of its own: each chunk is copied once, into a
        ``BlockFramer`` buffer laid out as on disk (the header first); a full buffer is
        written on the IO pool while the next one fills (two buffers, so memory is two
        ``write_buffer``s; a pair a finished write gave back is reused, see
        :mod:`objstore.node.framer_buffers`). With ``direct_io`` the file is written with ``O_DIRECT`` where
        the filesystem allows it (the framer then hands out aligned buffers)."""
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(
            self._io_pool, functools.partial(BlobFileWriter, self.data_dir, header.version_id,
                                             direct=self.options.direct_io))
        try:
            writer = await asyncio.shield(opening)
        except asyncio.CancelledError:  # the file is still being created: remove it once it is
            opening.add_done_callback(_abort_opened)
            raise
        blocks = max(1, self.options.write_buffer // header.block_size)
        align = DIRECT_ALIGN if writer.direct else 0
        pool = self._framer_pool(header.block_size, blocks)
        pair = pool.take(framer_capacity(header.block_size, blocks, len(hbytes), align))
        framer = BlockFramer(header.block_size, blocks, prefix=hbytes, align=align, buffers=pair)

        def release(done: asyncio.Future | None = None) -> None:
            # A cancelled future may leave its thread still reading the buffers: drop them.
            if pair is not None and (done is None or not done.cancelled()):
                pool.give(pair)

        writing: asyncio.Future = loop.create_future()
        writing.set_result(None)
        busy: concurrent.futures.Future | None = None  # the pool's side of ``writing``

        def start_write(view: memoryview) -> asyncio.Future:
            nonlocal busy
            busy = self._io_pool.submit(writer.write, view)
            return asyncio.wrap_future(busy, loop=loop)

        handed_off = False
        try:
            async for chunk in chunks:
                if framer.size + len(chunk) > header.size:
                    raise InvalidArgument("body longer than its Content-Length")
                view, pos = memoryview(chunk), 0
                while pos < len(view):
                    pos += framer.feed(view[pos:])
                    if framer.full:
                        await writing  # the buffer take() switches to is free again
                        writing = start_write(framer.take())
            if framer.size != header.size:
                raise IncompleteBody(f"got {framer.size} of {header.size} bytes")
            await writing
            handed_off = True
            task = loop.create_task(self._commit_large(writer, header, hbytes, framer.data_xxh,
                                                       framer.finish()))
            self._bg.add(task)  # close() waits for it even if this caller goes away
            task.add_done_callback(self._bg.discard)
            task.add_done_callback(release)  # the tail is written: nothing reads the buffers
            return await asyncio.shield(task)
        except BaseException:
            if not handed_off:
                # Close and unlink the temporary file (must run even when cancelled), once
                # no write of it is running on the pool.
                if not writing.done():
                    with contextlib.suppress(BaseException):
                        await asyncio.wait([writing])
                if writing.done() and not writing.cancelled():
                    writing.exception()  # retrieved: the error raised here is the one reported
                    writer.abort()
                    release(writing)
                else:
                    # Still running, or cancelled while its thread may still be writing (a
                    # cancelled future says nothing of the thread): close the file only once
                    # the thread is done with its descriptor, which a close would let the
                    # next open reuse. Runs on that thread, or here if it is done already.
                    assert busy is not None
                    busy.add_done_callback(lambda _f: writer.abort())
                    writing.add_done_callback(release)
            raise

    def _framer_pool(self, block_size: int, blocks: int) -> FramerBuffers:
        """The reused buffer pairs of framers of ``blocks`` blocks of ``block_size`` bytes."""
        framed = (block_size + CHECKSUM_SIZE) * blocks
        pool = self._framer_pools.get(framed)
        if pool is None:
            pool = self._framer_pools[framed] = FramerBuffers(framed)
        return pool

    async def _commit_large(self, writer: BlobFileWriter, header: BlobHeader, hbytes: bytes, dxxh: int,
                            tail: bytes | memoryview) -> PutResult:
        hxxh = unpack_u64(hbytes, len(hbytes) - 8)

        def work() -> tuple[int, str, int]:
            try:
                writer.buffered()  # the tail is not a whole number of aligned bytes
                writer.write(tail)
                seq = self._next_seq()
                rel = blob_file_rel(header.blob_id, seq)
                writer.commit(Footer(seq, header.size, dxxh, hxxh).encode(), rel)
            except BaseException:
                writer.abort()
                raise
            return seq, rel, writer.written

        seq, rel, length = await asyncio.get_running_loop().run_in_executor(self._io_pool, work)
        self._file_bytes += length
        self._files_written += length
        self._install(Entry(header, hxxh, dxxh, seq, Location(rel, 0, len(hbytes), length)))
        return PutResult(header.size, hex64(dxxh), seq)

    async def delete(self, blob_id: BlobId) -> bool:
        """Delete durably (a tombstone); False if the node does not hold the blob."""
        entry = self.index.get(blob_id)
        h = entry.header if entry is not None else None
        q = self.quarantined.get(blob_id) if h is None else None
        if h is not None:
            tomb = BlobHeader(KIND_TOMBSTONE, h.version_id, h.shard, h.bucket, h.key, h.policy, 0, h.block_size,
                              self._clock())
        elif q is not None:  # a tombstone resolves the quarantine entry for good
            tomb = BlobHeader(KIND_TOMBSTONE, q.version_id, q.shard, q.bucket, q.key, q.policy, 0,
                              self.options.block_size, self._clock())
        else:
            return False
        hb = tomb.encode()
        assert self._committer is not None, "store not open"
        record = PendingRecord(tomb, hb, len(hb), 0, xxh64(b""), unpack_u64(hb, len(hb) - 8))
        try:
            try:
                await self._committer.submit(record)
            except OSError as exc:
                if exc.errno not in _NO_SPACE or not self._give_up_spare():
                    raise
                log.warning("disk full: gave up the spare space for a tombstone")
                self._spare_missing = True
                await self._committer.submit(record)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise InsufficientStorage(f"no space left on storage node: {exc.strerror}") from exc
            raise
        if self._spare_missing and self.space()["free_bytes"] > 2 * SPARE_BYTES:  # set it aside again
            self._spare_missing = False
            self._in_background(self._keep_spare)
        return True

    def _keep_spare(self) -> None:
        """Make sure the spare file holds SPARE_BYTES (best effort: not on a full disk)."""
        path = os.path.join(self.data_dir, SPARE_FILE)
        try:
            if os.path.exists(path) and os.path.getsize(path) >= SPARE_BYTES:
                return
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, SPARE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._spare_missing = True
            log.warning("could not set aside %d spare bytes: %s", SPARE_BYTES, exc)

    def _give_up_spare(self) -> bool:
        """Free the spare file's space; False if there was none to give."""
        path = os.path.join(self.data_dir, SPARE_FILE)
        try:
            if os.path.getsize(path) == 0:
                return False
            os.truncate(path, 0)
        except OSError:
            return False
        return True

    def _on_commit(self, rec: PendingRecord, appended: Appended) -> None:
        if rec.seq:  # a copy made by compaction
            if rec.header.kind == KIND_TOMBSTONE:
                self.index.relocate_tombstone(rec.header.blob_id, rec.seq, appended.location)
            else:
                self.index.relocate(Entry(rec.header, rec.header_xxh, rec.data_xxh, rec.seq, appended.location))
        elif rec.header.kind == KIND_TOMBSTONE:
            self._discard(self.index.apply_tombstone(rec.header.blob_id, appended.seq, appended.location))
            self._resolve_quarantine(rec.header.blob_id, appended.seq, repaired=False)
        else:
            self._install(Entry(rec.header, rec.header_xxh, rec.data_xxh, appended.seq, appended.location))

    def _install(self, entry: Entry) -> None:
        self._discard(self.index.apply(entry))
        self._resolve_quarantine(entry.blob_id, entry.seq, repaired=True)

    def _discard(self, garbage: Entry | None) -> None:
        """Unlink a superseded blob file in the background (segment space stays until compaction).

        The index forgets the file (so a tombstone of its id may be dropped) only once the
        unlink is durable."""
        if garbage is None or not garbage.in_own_file:
            return
        self._file_bytes -= garbage.location.length
        rel = garbage.location.file
        fut = asyncio.get_running_loop().run_in_executor(self._io_pool, _unlink_durably,
                                                         os.path.join(self.data_dir, rel))
        self._bg.add(fut)

        def done(f: asyncio.Future) -> None:
            self._bg.discard(f)
            if not f.cancelled() and f.exception() is None:
                self.index.forget_file(rel, [garbage.blob_id])

        fut.add_done_callback(done)

    def _in_background(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the IO pool; ``close`` waits for it."""
        fut = asyncio.get_running_loop().run_in_executor(self._io_pool, fn, *args)
        self._bg.add(fut)
        fut.add_done_callback(self._bg.discard)

    # --- for compaction and garbage collection ------------------------------------------

    @property
    def segments(self) -> SegmentLog:
        assert self._segments is not None, "store not open"
        return self._segments

    async def append_copy(self, rec: PendingRecord) -> Appended:
        """Append a byte-identical copy of a record (``rec.seq`` set) durably; installed by
        :meth:`_on_commit` only if its id still has that seq."""
        assert self._committer is not None and rec.seq, "store not open, or not a copy"
        return await self._committer.submit(rec)

    async def run_io(self, fn: Callable, *args: object):  # noqa: ANN201 - whatever fn returns
        """Run blocking file IO on the store's pool."""
        return await asyncio.get_running_loop().run_in_executor(self._io_pool, fn, *args)

    async def run_serial(self, fn: Callable, *args: object):  # noqa: ANN201
        """Run ``fn`` on the committer's thread, serialised with appends (segment removal)."""
        return await asyncio.get_running_loop().run_in_executor(self._commit_pool, fn, *args)

    # --- quarantine ---------------------------------------------------------------------

    async def quarantine(self, entry: Entry, reason: str) -> bool:
        """Never serve ``entry`` (a record found corrupt) again, durably.

        It leaves the index at once (GET/HEAD answer NoSuchKey) and the quarantine list is
        saved before this returns. False (nothing done) when ``entry`` is no longer the live
        record of its blob id (replaced or deleted meanwhile).
        """
        if not self.index.drop(entry):
            return False
        h = entry.header
        self.quarantined.add(quarantine.Quarantined(h.version_id, h.shard, entry.seq, h.bucket, h.key, h.policy,
                                                    entry.location.file, reason, self._clock()))
        await self._save_quarantine()
        return True

    def _resolve_quarantine(self, blob_id: BlobId, seq: int, repaired: bool) -> None:
        q = self.quarantined.resolve(blob_id, seq, repaired)
        if q is None:
            return
        log.info("quarantined record of %s/%d %s", blob_id.version_id, blob_id.shard,
                 "replaced by a new copy" if repaired else "deleted")
        if q.file.startswith("blobs/"):
            self._file_bytes -= _file_size(os.path.join(self.data_dir, q.file))
            self._in_background(_unlink_durably, os.path.join(self.data_dir, q.file))
        fut = asyncio.get_running_loop().create_task(self._save_quarantine())
        self._bg.add(fut)
        fut.add_done_callback(self._bg.discard)

    async def _save_quarantine(self) -> None:
        """Persist the list as it is now; saves run in order and a stale one is skipped."""
        self._quarantine_version += 1
        version, raw = self._quarantine_version, self.quarantined.to_json()

        def work() -> None:
            with self._quarantine_lock:
                if version > self._quarantine_saved:
                    quarantine.save(self.data_dir, raw)
                    self._quarantine_saved = version

        await asyncio.get_running_loop().run_in_executor(self._io_pool, work)

    def record_fd(self, entry: Entry) -> tuple[int, Callable[[], None]]:
        """A read-only descriptor of ``entry``'s file and the call that gives it back when the
        caller is done (a segment's descriptor stays pinned until then, so compaction may
        remove the segment meanwhile without cutting the read short).

        Synchronous (run it on an executor); raises FileNotFoundError if the file is gone.
        """
        assert self._segments is not None, "store not open"
        if entry.in_own_file:
            fd = os.open(os.path.join(self.data_dir, entry.location.file), os.O_RDONLY)
            return fd, functools.partial(os.close, fd)
        readers, rel = self._segments.readers, entry.location.file
        fd = readers.acquire(rel)
        return fd, functools.partial(readers.release, rel, fd)

    # --- reads --------------------------------------------------------------------------

    def head(self, blob_id: BlobId) -> Entry:
        """The index entry of a blob; raises NoSuchKey."""
        entry = self.index.get(blob_id)
        if entry is None:
            raise NoSuchKey(f"blob {blob_id.version_id}/{blob_id.shard} not on this node")
        return entry

    async def open_read(self, blob_id: BlobId, start: int | None = None, end: int | None = None) -> BlobRead:
        """Open a verified read of bytes ``start..end`` (inclusive; the whole blob if None).

        The header and the first chunk are verified before this returns. Raises NoSuchKey,
        InvalidRange, CorruptBlob. Use the result as an async context manager.
        """
        assert self._io_pool is not None and self._segments is not None, "store not open"
        for _ in range(3):
            entry = self.head(blob_id)
            try:
                return await open_blob_read(entry, start, end, self._segments, self.data_dir, self._io_pool)
            except FileNotFoundError:
                if self.index.get(blob_id) is entry:
                    raise NoSuchKey(f"blob {blob_id.version_id}/{blob_id.shard} vanished") from None
        raise NoSuchKey(f"blob {blob_id.version_id}/{blob_id.shard} keeps moving")

    def versions(self, bucket: str, key: str) -> list[Entry]:
        return self.index.versions(bucket, key)

    # --- accounting ---------------------------------------------------------------------

    @property
    def used_bytes(self) -> int:
        """Bytes on disk: every segment and blob file (including not yet reclaimed space)."""
        seg = self._segments.total_bytes if self._segments is not None else 0
        return seg + self._file_bytes

    @property
    def _written(self) -> int:
        """Bytes this node has written to segments and blob files since opened. Unlike
        :attr:`used_bytes` it never drops: a removed file's space may be freed later (its
        unlink runs in the background, a reader may still hold it), so the admission
        estimate (see :meth:`admit`) takes none of it back until the next statfs."""
        seg = self._segments.appended_bytes if self._segments is not None else 0
        return seg + self._files_written

    def capacity_bytes(self) -> int:
        return self.space()["capacity_bytes"]

    def space(self) -> dict:
        """``capacity_bytes``, ``used_bytes``, ``free_bytes``, ``reserve_bytes`` of this node.

        With ``capacity_bytes`` set the disk is taken to end there (free is also never
        more than the filesystem has); else the data dir's filesystem's size and free
        space. Free space leaves out the bytes promised to writes in flight.
        """
        written = self._written  # before the statfs: what lands meanwhile is counted again, not missed
        fs = shutil.disk_usage(self.data_dir)
        self._fs_sample = (_monotonic(), fs.total, fs.free, written)
        return self._space(fs.total, fs.free, self.used_bytes)

    def _space(self, fs_total: int, fs_free: int, used: int) -> dict:
        """:meth:`space` given the filesystem's size and free bytes and this node's used bytes."""
        if self.options.capacity_bytes:
            capacity = self.options.capacity_bytes
            free = min(capacity - used, fs_free)
        else:
            capacity, free = fs_total, fs_free
        reserve = self.options.reserve_bytes
        return {
            "capacity_bytes": capacity,
            "used_bytes": used,
            "free_bytes": max(free - self._admitted, 0),
            "reserve_bytes": default_reserve(capacity) if reserve is None else reserve,
        }

    def stats(self) -> dict:
        seg = self._segments
        return {
            **self.space(),
            "live_bytes": self.index.live_bytes,
            "blob_count": len(self.index),
            "tombstones": self.index.tombstone_count,
            "quarantined": len(self.quarantined),
            "dead_record_ids": len(self.index.dead),
            "open_segment_readers": seg.readers.open_count if seg else 0,
            "segments": len(seg.numbers) if seg else 0,
            "fsyncs": seg.fsyncs if seg else 0,
            "group_committed_records": seg.records_committed if seg else 0,
        }


def _abort_opened(fut: asyncio.Future) -> None:
    """Close and remove the temporary file of a large write whose caller went away."""
    if not fut.cancelled() and fut.exception() is None:
        fut.result().abort()


async def _whole(data: bytes | memoryview) -> AsyncIterator[bytes | memoryview]:
    yield data


def _blob_error(exc: BaseException) -> ObjstoreError:
    """What one blob of :meth:`BlobStore.put_many` answers for the error that failed it (a
    full disk InsufficientStorage, a failed one InternalError, as a single write's call
    would answer); anything but an Exception (cancellation) goes on up."""
    if isinstance(exc, ObjstoreError):
        return exc
    if not isinstance(exc, Exception):
        raise exc
    err = _space_error(exc)
    return err if isinstance(err, ObjstoreError) else InternalError(f"the blob's write failed: {exc!r}")


def _space_error(exc: BaseException) -> BaseException:
    """A full disk's OSError as InsufficientStorage (as :meth:`BlobStore.put` raises it)."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return InsufficientStorage(f"no space left on storage node: {exc.strerror}")
    return exc


async def _read_exact(chunks: AsyncIterable[bytes], size: int) -> bytes:
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > size:
            raise InvalidArgument("body longer than its Content-Length")
    if len(buf) != size:
        raise IncompleteBody(f"got {len(buf)} of {size} bytes")
    return bytes(buf)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _unlink_durably(path: str) -> None:
    """Unlink ``path`` (gone already is fine) and fsync its directory."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fsync_dir(os.path.dirname(path))
