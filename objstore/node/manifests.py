"""A storage node's commit manifests (:mod:`objstore.manifest`), kept per (bucket, key).

Design: one append-only file, ``manifests.log`` in the node's data dir, of lines
``<crc32 hex> <json manifest>``; each append is written and fsynced
(:mod:`objstore.durable_io`) before it is acknowledged, and the whole table is loaded at
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


class ManifestStore:
    def __init__(self, data_dir: str, *, per_key: int = PER_KEY, max_keys: int = MAX_KEYS) -> None:
        self.path = os.path.join(os.path.abspath(data_dir), FILE_NAME)
        self.per_key = per_key
        self.max_keys = max_keys
        self._table: OrderedDict[tuple[str, str], list[CommitManifest]] = OrderedDict()
        self._lines = 0
        self._fd = -1
        self._lock = threading.Lock()  # one append (and compaction) at a time

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
        kept = [x for x in self._table.pop(k, []) if x.commit_index != m.commit_index]
        kept.append(m)
        kept.sort(key=lambda x: x.commit_index, reverse=True)
        self._table[k] = kept[: self.per_key]
        while len(self._table) > self.max_keys:
            self._table.popitem(last=False)

    def put_sync(self, m: CommitManifest) -> bool:
        """Store ``m`` durably; returns whether it was new. Raises OSError (not stored)."""
        with self._lock:
            if not self._accepts(m):
                return False
            write_all(self._fd, _line(m))
            os.fsync(self._fd)
            self._lines += 1
            self._remember(m)
            if self._lines > 2 * sum(len(v) for v in self._table.values()) + COMPACT_SLACK:
                self._compact()
            return True

    async def put(self, m: CommitManifest) -> bool:
        """:meth:`put_sync` off the event loop."""
        return await asyncio.to_thread(self.put_sync, m)

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
        atomic_write(self.path, data)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND, FILE_MODE)
        self._lines = sum(len(v) for v in self._table.values())
