"""A storage node's commit manifests (:mod:`objstore.manifest`), kept per (bucket, key).

Design: one append-only file, ``manifests.log`` in the node's data dir, of lines
``<crc32 hex> <json manifest>``; each append is written and fsynced
(:mod:`objstore.durable_io`) before it is acknowledged. Concurrent appends are grouped:
while one batch is written and fsynced (in a worker thread), the manifests arriving meanwhile
queue up and form the next batch, so one fsync serves them all. The whole table is loaded at
start-up (lines whose checksum fails, a torn tail, are skipped). When the file holds more
than twice as many lines as the table plus ``COMPACT_SLACK``, it is rewritten from the
table (``atomic_write``).

Invariants:
- Per key, at most ``per_key`` manifests, newest commit index first; a manifest older than
  every one kept (when the key's list is full) or equal to one kept is not stored again.
- At most ``max_keys`` keys; past that the key updated least recently is dropped (a quorum
  read that finds no manifest for a key falls back to the metadata service while a majority
  is up). Memory is bounded by ``max_keys * per_key`` manifests.
- A manifest is in memory only once it is durable.
"""
from __future__ import annotations

import asyncio
import heapq
import json
import logging
import os
import threading
import zlib
from collections import OrderedDict

from objstore.durable_io import FILE_MODE, atomic_write, write_all
from objstore.errors import InvalidArgument
from objstore.manifest import CommitManifest

log = logging.getLogger(__name__)

FILE_NAME = "manifests.log"
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


def _retrieve(fut: asyncio.Future) -> None:
    """Mark a failure as seen: its caller may have gone away (the batch still finished)."""
    if not fut.cancelled():
        fut.exception()


class ManifestStore:
    def __init__(self, data_dir: str, *, per_key: int = PER_KEY, max_keys: int = MAX_KEYS) -> None:
        self.path = os.path.join(os.path.abspath(data_dir), FILE_NAME)
        self.per_key = per_key
        self.max_keys = max_keys
        self._table: OrderedDict[tuple[str, str], list[CommitManifest]] = OrderedDict()
        self._lines = 0
        self._kept = 0  # manifests in the table (sum of the per-key lists' lengths)
        self._fd = -1
        self._lock = threading.Lock()  # one append (and compaction) at a time
        self._queue: list[tuple[CommitManifest, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    def open(self) -> None:
        """Load the file (creating it); raises OSError."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                for line in f:
                    m = _parse(line)
                    self._lines += 1
                    if m is None:
                        log.warning("skipping a damaged line of %s", self.path)
                        continue
                    self._remember(m)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __len__(self) -> int:
        return len(self._table)

    def get(self, bucket: str, key: str) -> list[CommitManifest]:
        """The key's manifests, newest commit index first (empty if none)."""
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

    def put_sync(self, m: CommitManifest) -> bool:
        """Store ``m`` durably; returns whether it was new. Raises OSError (not stored)."""
        return self.put_batch_sync([m])[0]

    def put_batch_sync(self, batch: list[CommitManifest]) -> list[bool]:
        """Store every manifest of ``batch`` durably with one write and one fsync; whether each
        was new, in order. Raises OSError (none of them stored)."""
        with self._lock:
            new: list[bool] = []
            chosen: set[tuple[str, str, int]] = set()
            for m in batch:
                ident = (m.bucket, m.key, m.commit_index)
                new.append(ident not in chosen and self._accepts(m))
                if new[-1]:
                    chosen.add(ident)
            fresh = [m for m, ok in zip(batch, new) if ok]
            if not fresh:
                return new
            write_all(self._fd, b"".join(_line(m) for m in fresh))
            os.fsync(self._fd)
            self._lines += len(fresh)
            for m in fresh:
                self._remember(m)
            if self._lines > 2 * self._kept + COMPACT_SLACK:
                self._compact()
            return new

    async def put(self, m: CommitManifest) -> bool:
        """Store ``m`` durably, grouped with the manifests stored concurrently (one fsync per
        batch, off the event loop); whether it was new. Raises OSError (not stored)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._queue.append((m, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_queued(), name="manifest-commit")
        # Shielded: a caller that goes away must not cancel the batch others share.
        return await asyncio.shield(fut)

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                outcome = await asyncio.to_thread(self.put_batch_sync, [m for m, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the failure
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), ok in zip(batch, outcome):
                if not fut.done():
                    fut.set_result(ok)

    def put_many_sync(self, manifests: list[CommitManifest]) -> int:
        """Store ``manifests`` durably with one write and one fsync; returns how many were
        new. Raises OSError (none stored)."""
        with self._lock:
            new: list[CommitManifest] = []
            for m in manifests:
                if self._accepts(m) and all(x.commit_index != m.commit_index or (x.bucket, x.key) != (m.bucket, m.key)
                                            for x in new):
                    new.append(m)
            if not new:
                return 0
            write_all(self._fd, b"".join(_line(m) for m in new))
            os.fsync(self._fd)
            self._lines += len(new)
            for m in new:
                self._remember(m)
            if self._lines > 2 * sum(len(v) for v in self._table.values()) + COMPACT_SLACK:
                self._compact()
            return len(new)

    async def put_many(self, manifests: list[CommitManifest]) -> int:
        """:meth:`put_many_sync` off the event loop."""
        return await asyncio.to_thread(self.put_many_sync, manifests)

    def page(self, after: tuple[str, str], limit: int) -> list[tuple[str, str, list[CommitManifest]]]:
        """Up to ``limit`` keys after ``after`` in (bucket, key) order, each with its
        manifests (newest first): how a gateway walks a node's manifests to hand them
        over to a key's new ring nodes. Each page costs one pass over the table
        (O(keys * log limit))."""
        with self._lock:
            keys = heapq.nsmallest(limit, (k for k in self._table if k > after))
            return [(b, k, list(self._table[(b, k)])) for b, k in keys]

    def _compact(self) -> None:
        data = b"".join(_line(m) for kept in self._table.values() for m in reversed(kept))
        self._kept = sum(len(kept) for kept in self._table.values())
        atomic_write(self.path, data)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, FILE_MODE)
        self._lines = sum(len(v) for v in self._table.values())
