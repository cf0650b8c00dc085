"""A storage node's commit manifests (:mod:`objstore.manifest`), kept per (bucket, key).

Design: one append-only file, ``manifests.log`` in the node's data dir, of lines
``<crc32 hex> <json manifest>``; each append is written and fsynced
(:mod:`objstore.durable_io`) before it is acknowledged. Concurrent appends are grouped:
while one batch is written and fsynced (in a worker thread), the manifests arriving meanwhile
queue up and form the next batch, so one fsync serves them all. The whole table is loaded at
start-up (lines whose checksum fails are skipped; a torn tail, a last line without its
newline, is cut off, so the next append starts a line of its own). A failed append is cut
back likewise before anything else is appended. When the file holds more
than twice as many lines as the table plus ``COMPACT_SLACK``, it is rewritten from the
table (``atomic_write``).

Invariants:
- Per key, at most ``per_key`` manifests, newest commit index first; a manifest older than
  every one kept (when the key's list is full) or equal to one kept is not stored again.
- At most ``max_keys`` keys; past that the key updated least recently is dropped (a quorum
  read that finds no manifest for a key falls back to the metadata service while a majority
  is up). Memory is bounded by ``max_keys * per_key`` manifests.
- A manifest is in memory only once it is durable.
- Ring-epoch fence (:mod:`gateway.ring_epochs`): a gateway walking this node to hand its
  manifests over to the ring that came into effect at epoch E first raises the fence to E
  (``manifests.fence``, written durably; it only rises). From then on a manifest stored
  with an older ring epoch is refused (:class:`StaleRingEpoch`): a gateway that has not
  adopted ring E cannot add a manifest the walk would not see. The fence is checked and
  the walk's key snapshot taken under the same lock as stores, so every manifest stored
  before the fence is in the snapshot and every later one carries epoch >= E.
- Walk pages cost O(page): the first page of a walk sorts the keys once into a snapshot
  (a cursor, at most ``MAX_CURSORS`` kept, least recently used dropped first); the next
  pages bisect into it. A key dropped since is skipped; a key first stored after the
  snapshot is not in it (stored at epoch >= the walk's fence, by a gateway that placed it
  on the new ring's owners too). An unknown cursor (dropped, or the node restarted)
  starts a new snapshot after the page's ``after`` key.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import threading
import zlib
from bisect import bisect_right
from collections import OrderedDict

from objstore.durable_io import FILE_MODE, atomic_write, write_all
from objstore.errors import InvalidArgument, StaleRingEpoch
from objstore.manifest import CommitManifest
from objstore.commit_thread import CommitThread
from objstore.node.group_commit import GATHER_TICKS

log = logging.getLogger(__name__)

FILE_NAME = "manifests.log"
FENCE_FILE = "manifests.fence"
MAX_CURSORS = 4  # walk snapshots kept (each a sorted list of the table's keys)
PER_KEY = 8
MAX_KEYS = 1_000_000
COMPACT_SLACK = 4096


def _line(m: CommitManifest) -> bytes:
    body = json.dumps(m.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def _parse(line: bytes) -> CommitManifest | None:
    crc, _, body = line.rstrip(b"\n").partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        return CommitManifest.from_dict(json.loads(body))
    except (ValueError, InvalidArgument):
        return None


class _Many:
    """The caller's side of the manifests of one :meth:`ManifestStore.put_many`: one future,
    resolved once each has its outcome (whether it was new, or the error that failed it)."""

    __slots__ = ("fut", "outcomes", "left")

    def __init__(self, fut: "asyncio.Future[list[bool | BaseException]]", n: int) -> None:
        self.fut = fut
        self.outcomes: list[bool | BaseException] = [False] * n
        self.left = n

    def settle(self, i: int, outcome: bool | BaseException) -> None:
        self.outcomes[i] = outcome
        self.left -= 1
        if not self.left and not self.fut.done():
            self.fut.set_result(self.outcomes)


def _settle(waiter: "asyncio.Future[bool] | _Many", i: int, outcome: bool | BaseException) -> None:
    """Give one queued manifest's outcome to its caller (if still waiting)."""
    if type(waiter) is _Many:
        waiter.settle(i, outcome)
    elif not waiter.done():  # type: ignore[union-attr]
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)  # type: ignore[union-attr]
        else:
            waiter.set_result(outcome)  # type: ignore[union-attr]


class ManifestStore:
    def __init__(self, data_dir: str, *, per_key: int = PER_KEY, max_keys: int = MAX_KEYS) -> None:
        self.path = os.path.join(os.path.abspath(data_dir), FILE_NAME)
        self.per_key = per_key
        self.max_keys = max_keys
        self._table: OrderedDict[tuple[str, str], list[CommitManifest]] = OrderedDict()
        self._lines = 0
        self._kept = 0  # manifests in the table (sum of the per-key lists' lengths)
        self._fd = -1
        self._size = 0  # bytes of whole lines in the file: where the next append starts
        self._torn = False  # bytes past ``_size`` a failed append left that could not be cut off
        self._lock = threading.Lock()  # one append (and compaction) at a time
        # (manifest, ring epoch, its caller's future or put_many's _Many, its place there)
        self._queue: list[tuple[CommitManifest, int, asyncio.Future[bool] | _Many, int]] = []
        self._writer: asyncio.Task[None] | None = None
        self._committer = CommitThread("manifest-commit")  # the writer's batches, one at a time
        self.fence_path = os.path.join(os.path.dirname(self.path), FENCE_FILE)
        self.fence = 0  # manifests placed by a ring older than this epoch are refused
        self._cursors: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        self._cursor_ids = itertools.count(1)

    def open(self) -> None:
        """Load the file (creating it); raises OSError."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.fence_path):
            with open(self.fence_path, "rb") as f:
                try:
                    self.fence = int(f.read().strip() or b"0")
                except ValueError:
                    raise OSError(f"{self.fence_path} does not hold an epoch") from None
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):  # a torn tail: cut off below
                        self._torn = True
                        break
                    self._size += len(line)
                    m = _parse(line)
                    self._lines += 1
                    if m is None:
                        log.warning("skipping a damaged line of %s", self.path)
                        continue
                    self._remember(m)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        if self._torn:
            self._cut_back()  # if it fails, the first append tries again (or fails)

    def _cut_back(self) -> None:
        """Cut the file back to its whole lines (what a failed append or a crash left past
        them would otherwise start the next line); ``_torn`` stays set if that fails."""
        try:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
            self._torn = False
        except OSError:
            log.exception("could not cut %s back to %d bytes", self.path, self._size)
            self._torn = True

    async def drain(self) -> None:
        """Wait until every manifest queued by :meth:`put` was written (or failed); call it
        before :meth:`close` so that those are not failed unwritten."""
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)

    def close(self) -> None:
        """Close the file; a batch being written finishes first, and manifests still queued
        (see :meth:`drain`) fail with OSError rather than be written after the file closed."""
        self._committer.shutdown(wait=True)  # a batch being written finishes first
        self._committer = CommitThread("manifest-commit")  # started again only if opened again
        queued, self._queue = self._queue, []
        for _, _, waiter, i in queued:
            _settle(waiter, i, OSError(f"{self.path} closed before this manifest was written"))
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __len__(self) -> int:
        return len(self._table)

    def get(self, bucket: str, key: str, ring_epoch: int = 0) -> list[CommitManifest]:
        """The key's manifests, newest commit index first (empty if none), for a quorum read
        by the ring of ``ring_epoch`` (0: any). Raises StaleRingEpoch when this node's
        manifests were handed over to a newer ring: the reader must consult that ring."""
        if ring_epoch and ring_epoch < self.fence:
            raise self._stale(ring_epoch)
        return list(self._table.get((bucket, key), ()))

    def _accepts(self, m: CommitManifest) -> bool:
        kept = self._table.get((m.bucket, m.key), [])
        if any(k.commit_index == m.commit_index for k in kept):
            return False
        return len(kept) < self.per_key or m.commit_index > kept[-1].commit_index

    def _remember(self, m: CommitManifest) -> None:
        k = (m.bucket, m.key)
        old = self._table.pop(k, [])
        kept = [x for x in old if x.commit_index != m.commit_index]
        kept.append(m)
        kept.sort(key=lambda x: x.commit_index, reverse=True)
        kept = kept[: self.per_key]
        self._table[k] = kept
        self._kept += len(kept) - len(old)
        while len(self._table) > self.max_keys:
            self._kept -= len(self._table.popitem(last=False)[1])

    def put_sync(self, m: CommitManifest, ring_epoch: int = 0) -> bool:
        """Store ``m`` durably; returns whether it was new. Raises OSError (not stored),
        StaleRingEpoch (``ring_epoch`` is below the fence)."""
        outcome = self.put_batch_sync([m], [ring_epoch])[0]
        if outcome is None:
            raise self._stale(ring_epoch)
        return outcome

    def _stale(self, ring_epoch: int) -> StaleRingEpoch:
        return StaleRingEpoch(f"manifest placed by ring epoch {ring_epoch}; this node's manifests were handed over "
                              f"to ring epoch {self.fence}", fence=self.fence)

    def put_batch_sync(self, batch: list[CommitManifest], epochs: list[int] | None = None) -> list[bool | None]:
        """Store every manifest of ``batch`` durably with one write and one fsync; whether each
        was new, in order (None: refused, its ring epoch in ``epochs`` is below the fence).
        Raises OSError (none of them stored)."""
        with self._lock:
            new: list[bool | None] = []
            chosen: set[tuple[str, str, int]] = set()
            for i, m in enumerate(batch):
                if epochs is not None and epochs[i] < self.fence:
                    new.append(None)
                    continue
                ident = (m.bucket, m.key, m.commit_index)
                new.append(ident not in chosen and self._accepts(m))
                if new[-1]:
                    chosen.add(ident)
            fresh = [m for m, ok in zip(batch, new) if ok]
            if not fresh:
                return new
            if self._torn:  # a failed append's bytes are still there: never append after them
                self._cut_back()
                if self._torn:
                    raise OSError(f"{self.path} holds a failed append that could not be cut off")
            data = b"".join(_line(m) for m in fresh)
            try:
                write_all(self._fd, data)
                os.fsync(self._fd)
            except BaseException:
                self._cut_back()
                raise
            self._size += len(data)
            self._lines += len(fresh)
            for m in fresh:
                self._remember(m)
            if self._lines > 2 * self._kept + COMPACT_SLACK:
                self._compact()
            return new

    async def put(self, m: CommitManifest, ring_epoch: int = 0) -> bool:
        """Store ``m`` (placed by the ring of ``ring_epoch``) durably, grouped with the
        manifests stored concurrently (one fsync per batch, off the event loop); whether it
        was new. Raises OSError (not stored), StaleRingEpoch (below the fence)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._queue.append((m, ring_epoch, fut, 0))
        self._start_writer(loop)
        # A caller that goes away cancels its own future only, not the batch others share
        # (the writer skips a future already done).
        try:
            return await fut
        finally:
            if fut.done() and not fut.cancelled():
                fut.exception()  # seen, even when this caller was cancelled meanwhile

    def _start_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_queued(), name="manifest-commit")

    async def _write_queued(self) -> None:
        for _ in range(GATHER_TICKS):  # the rest of this burst joins the first batch
            await asyncio.sleep(0)
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcome = await self._committer.run(self.put_batch_sync, [item[0] for item in batch],
                                                    [item[1] for item in batch])
            except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the failure
                for _, _, waiter, i in batch:
                    _settle(waiter, i, exc)
                continue
            for (_, epoch, waiter, i), ok in zip(batch, outcome):
                _settle(waiter, i, self._stale(epoch) if ok is None else ok)

    def put_many_sync(self, manifests: list[CommitManifest], ring_epoch: int = 0) -> int:
        """Store ``manifests`` (placed by the ring of ``ring_epoch``) durably with one write
        and one fsync; returns how many were new. Raises OSError, StaleRingEpoch (below the
        fence; none stored)."""
        outcome = self.put_batch_sync(manifests, [ring_epoch] * len(manifests))
        if any(ok is None for ok in outcome):  # one epoch, checked under one lock: all refused
            raise self._stale(ring_epoch)
        return sum(1 for ok in outcome if ok)

    async def put_many(self, manifests: list[CommitManifest], ring_epoch: int = 0) -> int:
        """:meth:`put_many_sync` off the event loop, grouped (one write, one fsync) with the
        manifests stored concurrently by :meth:`put` and other calls of this."""
        if not manifests:
            return 0
        loop = asyncio.get_running_loop()
        many = _Many(loop.create_future(), len(manifests))
        # Queued together: they go in the same batch. A caller that goes away cancels only
        # its own future, not the batch others share.
        self._queue.extend((m, ring_epoch, many, i) for i, m in enumerate(manifests))
        self._start_writer(loop)
        done = await many.fut
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(1 for ok in done if ok)

    def raise_fence(self, epoch: int) -> None:
        """Refuse manifests placed by rings older than ``epoch`` from now on (durably; the
        fence never lowers). Raises OSError (the fence unchanged)."""
        with self._lock:
            self._raise_fence(epoch)

    def _raise_fence(self, epoch: int) -> None:
        if epoch > self.fence:
            atomic_write(self.fence_path, b"%d\n" % epoch)
            self.fence = epoch

    def walk_page(self, after: tuple[str, str], limit: int, cursor: str = "",
                  fence: int = 0) -> tuple[list[tuple[str, str, list[CommitManifest]]], str]:
        """Up to ``limit`` keys after ``after`` in (bucket, key) order, each with its
        manifests (newest first), and the cursor to pass for the next page ("" after the
        last page): how a gateway
        walks a node's manifests to hand them over to a key's new ring nodes, after raising
        the fence to ``fence``. The first page of a walk (no or an unknown ``cursor``) sorts
        the table's keys once; later pages cost O(log keys + page). Raises OSError (the
        fence could not be written)."""
        with self._lock:
            self._raise_fence(fence)
            keys = self._cursors.get(cursor) if cursor else None
            if keys is None:
                cursor = str(next(self._cursor_ids))
                keys = sorted(k for k in self._table if k > after)
                self._cursors[cursor] = keys
                while len(self._cursors) > MAX_CURSORS:
                    self._cursors.popitem(last=False)
            else:
                self._cursors.move_to_end(cursor)
            i = bisect_right(keys, after)
            out: list[tuple[str, str, list[CommitManifest]]] = []
            while i < len(keys) and len(out) < limit:
                found = self._table.get(keys[i])
                if found:
                    out.append((keys[i][0], keys[i][1], list(found)))
                i += 1
            if i >= len(keys):
                self._cursors.pop(cursor, None)
                return out, ""  # walked to the end
            return out, cursor

    def page(self, after: tuple[str, str], limit: int) -> list[tuple[str, str, list[CommitManifest]]]:
        """:meth:`walk_page` without a cursor or fence (one sort of the keys after ``after``)."""
        found, cursor = self.walk_page(after, limit)
        if cursor:
            with self._lock:
                self._cursors.pop(cursor, None)
        return found

    def _compact(self) -> None:
        data = b"".join(_line(m) for kept in self._table.values() for m in reversed(kept))
        self._kept = sum(len(kept) for kept in self._table.values())
        atomic_write(self.path, data)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, FILE_MODE)
        self._size, self._torn = len(data), False
        self._lines = sum(len(v) for v in self._table.values())
