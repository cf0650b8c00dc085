"""The durable :class:`~metadata.raft.storage.Storage` of a Raft metadata node.

Layout under ``<data_dir>/raft``: ``log/`` (a :class:`metadata.storage.log.DiskLog`: one record
per entry, term and index in the record header, :func:`~metadata.raft.storage.pack_entry`
payload; group commit), ``snapshots/`` (a :class:`metadata.storage.snapshot_store.SnapshotStore`,
keeping two), ``incoming/`` (snapshots being received), ``hard-state`` and ``recovering``
(:mod:`metadata.storage.files`). Every metadata node, a single one included (a group of
one voter), keeps its state in this one layout.

Invariants:
- The compaction point ``base`` (``first_index() - 1``) is where the snapshot ends, or
  the first entry still in the log when compaction kept entries below the snapshot (the
  log deletes whole segments only); its term is always known. ``base <= snapshot index
  <= last_index``, so a follower that needs entries below ``base`` gets the snapshot.
- ``append`` replaces a conflicting suffix first (truncate, then append, in the log's one
  write queue); the returned future resolves once the entries are fsynced, together
  with every other append queued meanwhile (one fsync for the batch).
- The hard state's term and vote are written durably whenever they change; the commit
  index rides along (and on close): it may lag, never lead, what is durable in the log
  (a lagging commit is safe; on start it is also clamped to the log).
- Snapshots are installed by moving a verified file into ``snapshots/`` and resetting the
  log to start after it; the snapshot file is durable before the log is reset.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from pathlib import Path

from metadata.raft.errors import Compacted, Unavailable
from metadata.raft.records import Entry, HardState, Snapshot, SnapshotMeta
from metadata.raft.storage import limit_size, pack_entry, unpack_entry
from metadata.storage import files
from metadata.storage.log import DiskLog, LogRecord
from metadata.storage.snapshot_store import SnapshotStore
from objstore.durable_io import fsync_dir

log = logging.getLogger(__name__)

CACHE_ENTRIES = 8192
CACHE_BYTES = 16 << 20
_PAGE = 256


class DiskRaftStorage:
    """Raft storage on disk; build it with :func:`metadata.storage.recovery.open_storage`."""

    def __init__(self, root: Path, dlog: DiskLog, snapshots: SnapshotStore, snap: SnapshotMeta,
                 snap_path: Path | None, hard_state: HardState) -> None:
        self.root = root
        self.dlog = dlog
        self.snapshots = snapshots
        self._snap = snap
        self._snap_path = snap_path
        self.hard_state = hard_state  # the newest known (what the core last handed over)
        self._hs_on_disk = hard_state
        self._hs_lock = asyncio.Lock()
        self._cache: OrderedDict[int, Entry] = OrderedDict()
        self._cache_bytes = 0
        self.incoming = root / "incoming"

    # --- read side (the core) ---------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, SnapshotMeta]:
        hs = self.hard_state
        commit = min(max(hs.commit, self._snap.index), self.last_index())
        return HardState(hs.term, hs.vote, commit), self._snap

    def _base(self) -> tuple[int, int]:
        f, s = self.dlog.first_index, self._snap
        if f - 1 == s.index:
            return s.index, s.term
        if f == 1:
            return 0, 0
        if f <= s.index:
            return f, self.dlog.term_at(f)
        raise AssertionError(f"log starts at {f}, after the snapshot at {s.index}")

    def first_index(self) -> int:
        return self._base()[0] + 1

    def last_index(self) -> int:
        return max(self.dlog.last_index, self._base()[0])

    def term(self, index: int) -> int:
        base, base_term = self._base()
        if index == base:
            return base_term
        if index < base:
            raise Compacted(index)
        if index > self.last_index():
            raise Unavailable(index)
        e = self._cache.get(index)
        return e.term if e is not None else self.dlog.term_at(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo <= self._base()[0]:
            raise Compacted(lo)
        if hi > self.last_index() + 1:
            raise Unavailable(hi)
        out: list[Entry] = []
        size = 0
        i = lo
        while i < hi:
            e = self._cache.get(i)
            if e is not None:
                page = [e]
            else:
                top = min(hi - 1, i + _PAGE - 1)
                page = [unpack_entry(r.index, r.term, r.payload) for r in self.dlog.entries(i, top)]
            for e in page:
                out.append(e)
                size += len(e.data)
                if max_bytes is not None and size > max_bytes:
                    return limit_size(out, max_bytes)
            i = out[-1].index + 1
        return out

    def snapshot(self) -> Snapshot:
        return Snapshot(self._snap, self._snap_path)

    @property
    def snapshot_meta(self) -> SnapshotMeta:
        return self._snap

    # --- write side (the driver) ------------------------------------------------------------

    def append(self, entries: "tuple[Entry, ...] | list[Entry]") -> "asyncio.Future":
        """Append (replacing any suffix from the first new index); resolves when durable."""
        base = self._base()[0]
        entries = [e for e in entries if e.index > base]
        if not entries:
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(None)
            return fut
        first = entries[0].index
        futs = []
        if first <= self.dlog.last_index:
            futs.append(self.dlog.truncate_suffix(first))
            for i in [i for i in self._cache if i >= first]:
                self._cache_bytes -= len(self._cache.pop(i).data)
        futs.append(self.dlog.append([LogRecord(e.term, e.index, pack_entry(e)) for e in entries]))
        for e in entries:
            self._cache[e.index] = e
            self._cache_bytes += len(e.data)
        while self._cache and (len(self._cache) > CACHE_ENTRIES or self._cache_bytes > CACHE_BYTES):
            self._cache_bytes -= len(self._cache.popitem(last=False)[1].data)
        return asyncio.gather(*futs)

    async def set_hard_state(self, hs: HardState, sync: bool) -> None:
        """Record ``hs``; written durably now when term or vote changed (or ``sync``)."""
        self.hard_state = hs
        d = self._hs_on_disk
        if sync or hs.term != d.term or hs.vote != d.vote:
            await self.flush_hard_state()

    async def flush_hard_state(self) -> None:
        """Write the newest hard state durably (serialised: never an older one after it)."""
        async with self._hs_lock:
            hs = self.hard_state
            if hs == self._hs_on_disk:
                return
            await asyncio.get_running_loop().run_in_executor(None, files.save_hard_state,
                                                             self.root / "hard-state", hs)
            self._hs_on_disk = hs

    async def install_snapshot(self, snap: Snapshot) -> None:
        """Make the received snapshot file ``snap.data`` the newest snapshot and restart the
        log after it (the file durable first)."""
        meta, path = snap.meta, Path(snap.data)
        final = self.snapshots.dir / files.snapshot_name(meta.index, meta.term)

        def move() -> None:
            os.replace(path, final)
            fsync_dir(self.snapshots.dir)
            self.snapshots.prune()

        await asyncio.get_running_loop().run_in_executor(None, move)
        self._snap, self._snap_path = meta, final
        self._cache.clear()
        self._cache_bytes = 0
        await self.dlog.reset(meta.index + 1)

    def record_snapshot(self, meta: SnapshotMeta, path: Path) -> bool:
        """A snapshot of our own state machine was written at ``path``; use it if newer."""
        if meta.index <= self._snap.index:
            return False
        self._snap, self._snap_path = meta, path
        return True

    async def compact(self) -> None:
        """Drop log segments below the older of the two kept snapshots (the newer may be
        damaged one day; the older plus the log can still rebuild the state)."""
        kept = self.snapshots.list()
        if len(kept) > 1:
            await self.dlog.compact(min(kept[1].index, self._snap.index))

    def log_bytes(self) -> int:
        return self.dlog.disk_bytes()

    async def close(self) -> None:
        try:
            await self.flush_hard_state()
        except OSError as exc:
            log.warning("could not write the hard state on close: %s", exc)
        await self.dlog.close()
