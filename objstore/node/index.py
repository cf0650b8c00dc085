"""The in-memory index of a storage node: blob id -> location, and (bucket, key) -> blob ids.

Pure data structure, no IO. It is rebuilt at start-up from the records found on disk and
kept current as records commit.

Invariants:
- For one blob id the record with the highest ``seq`` wins: a blob record replaces any
  older one, a tombstone removes any older one and suppresses any older record applied
  later. Applying the same set of records in any order yields the same index, so the live
  index always equals the one rebuilt from the files.
- ``live_bytes`` is the sum of ``size`` over live entries; ``live_by_file`` the sum of
  record lengths of live entries per file.
- Memory follows what is on disk, not history: a tombstone is kept (with where its record
  is) only while it is the newest record of its id; every blob record that lost (to a
  newer record, to a tombstone, or an equal-seq duplicate left by compaction) is counted
  per id and file in ``dead`` until its file is removed (:meth:`forget_file`). A tombstone
  is *needed* while its id has a dead blob record in another file: dropping it then
  could bring that record back at the next rebuild; otherwise compaction may drop it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from objstore.node.blob import BlobHeader, BlobId


@dataclass(frozen=True, slots=True)
class Location:
    """Where a record lives: a path relative to the data dir and the record's extent."""

    file: str
    offset: int
    header_len: int
    length: int

    @property
    def data_offset(self) -> int:
        return self.offset + self.header_len


@dataclass(frozen=True, slots=True)
class Entry:
    """A committed blob record."""

    header: BlobHeader
    header_xxh: int
    data_xxh: int
    seq: int
    location: Location

    @property
    def blob_id(self) -> BlobId:
        return self.header.blob_id

    @property
    def in_own_file(self) -> bool:
        return self.location.file.startswith("blobs/")

    def describe(self) -> dict:
        """The JSON a node returns for one version it holds."""
        h = self.header
        return {
            "version_id": h.version_id,
            "shard": h.shard,
            "size": h.size,
            "created": h.created,
            "policy": h.policy,
            "xxh64": f"{self.data_xxh:016x}",
        }


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The newest record of a deleted blob id: its seq and where the record is."""

    seq: int
    location: Location | None


class BlobIndex:
    def __init__(self) -> None:
        self._entries: dict[BlobId, Entry] = {}
        self._tombstones: dict[BlobId, Tombstone] = {}
        self._tombs_by_file: dict[str, set[BlobId]] = {}
        self._by_key: dict[tuple[str, str], set[BlobId]] = {}
        self.dead: dict[BlobId, dict[str, int]] = {}  # id -> file -> dead blob records there
        self.live_by_file: dict[str, int] = {}
        self.live_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, blob_id: BlobId) -> Entry | None:
        return self._entries.get(blob_id)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    def tombstone(self, blob_id: BlobId) -> Tombstone | None:
        return self._tombstones.get(blob_id)

    def tombstones_in(self, file: str) -> list[BlobId]:
        return list(self._tombs_by_file.get(file, ()))

    def apply(self, entry: Entry) -> Entry | None:
        """Install a committed blob record; returns the record that is now garbage, if any.

        That is the entry it replaced, or ``entry`` itself when an equal-or-newer record or
        tombstone already holds the id.
        """
        bid = entry.blob_id
        tomb = self._tombstones.get(bid)
        if tomb is not None:
            if tomb.seq > entry.seq:
                self._add_dead(entry)
                return entry
            self._drop_tombstone(bid)  # superseded by a newer record: no longer needed
        old = self._entries.get(bid)
        if old is not None:
            if old.seq >= entry.seq:
                self._add_dead(entry)
                return entry
            self._remove(old)
        self._entries[bid] = entry
        self._by_key.setdefault((entry.header.bucket, entry.header.key), set()).add(bid)
        self.live_bytes += entry.header.size
        self._count_live(entry.location, 1)
        return old

    def apply_tombstone(self, blob_id: BlobId, seq: int, location: Location | None = None) -> Entry | None:
        """Record a delete committed at ``seq``; returns the entry it removed, if any."""
        old = self._entries.get(blob_id)
        if old is not None and old.seq > seq:
            return None  # a newer record holds the id: this tombstone is dead already
        tomb = self._tombstones.get(blob_id)
        if tomb is None or tomb.seq < seq:
            self._drop_tombstone(blob_id)
            self._tombstones[blob_id] = Tombstone(seq, location)
            if location is not None:
                self._tombs_by_file.setdefault(location.file, set()).add(blob_id)
        if old is None:
            return None
        self._remove(old)
        return old

    def drop(self, entry: Entry) -> bool:
        """Stop indexing ``entry`` if it is still the live record of its id (no tombstone:
        a newer record of the id is installed as usual). True if it was dropped."""
        if self._entries.get(entry.blob_id) is not entry:
            return False
        self._remove(entry)
        return True

    def _drop_tombstone(self, blob_id: BlobId) -> None:
        tomb = self._tombstones.pop(blob_id, None)
        if tomb is not None and tomb.location is not None:
            ids = self._tombs_by_file.get(tomb.location.file)
            if ids is not None:
                ids.discard(blob_id)
                if not ids:
                    del self._tombs_by_file[tomb.location.file]

    def _add_dead(self, entry: Entry) -> None:
        files = self.dead.setdefault(entry.blob_id, {})
        files[entry.location.file] = files.get(entry.location.file, 0) + 1

    def _count_live(self, location: Location, sign: int) -> None:
        n = self.live_by_file.get(location.file, 0) + sign * location.length
        if n:
            self.live_by_file[location.file] = n
        else:
            self.live_by_file.pop(location.file, None)

    def tombstone_needed(self, blob_id: BlobId) -> bool:
        """True while a dead blob record of ``blob_id`` is in a file other than the tombstone's."""
        tomb = self._tombstones.get(blob_id)
        if tomb is None:
            return False
        own = tomb.location.file if tomb.location is not None else None
        return any(f != own for f in self.dead.get(blob_id, ()))

    def tombstones_needed_now(self) -> list[BlobId]:
        """The ids whose tombstone is still needed (see :meth:`tombstone_needed`)."""
        return [bid for bid in self._tombstones if self.tombstone_needed(bid)]

    def relocate(self, entry: Entry) -> bool:
        """Point the live entry at a byte-identical copy (same seq) written by compaction.

        False (and the copy counted as dead) when the id moved on meanwhile.
        """
        old = self._entries.get(entry.blob_id)
        if old is None or old.seq != entry.seq or old.header_xxh != entry.header_xxh:
            self._add_dead(entry)
            return False
        self._count_live(old.location, -1)
        self._entries[entry.blob_id] = entry
        self._count_live(entry.location, 1)
        self._add_dead(old)  # the original, until its segment is removed
        return True

    def relocate_tombstone(self, blob_id: BlobId, seq: int, location: Location) -> bool:
        """Point a tombstone at its copy (same seq) written by compaction."""
        tomb = self._tombstones.get(blob_id)
        if tomb is None or tomb.seq != seq:
            return False
        self._drop_tombstone(blob_id)
        self._tombstones[blob_id] = Tombstone(seq, location)
        self._tombs_by_file.setdefault(location.file, set()).add(blob_id)
        return True

    def forget_file(self, file: str, ids: Iterable[BlobId]) -> int:
        """Forget a removed file: the dead records ``ids`` had there, and the tombstones whose
        record was there (dropped by compaction). Returns how many tombstones were dropped."""
        for bid in ids:
            files = self.dead.get(bid)
            if files is not None:
                files.pop(file, None)
                if not files:
                    del self.dead[bid]
        dropped = self.tombstones_in(file)
        for bid in dropped:
            self._drop_tombstone(bid)
        return len(dropped)

    def _remove(self, entry: Entry) -> None:
        bid = entry.blob_id
        del self._entries[bid]
        self._add_dead(entry)
        self._count_live(entry.location, -1)
        self.live_bytes -= entry.header.size
        k = (entry.header.bucket, entry.header.key)
        ids = self._by_key.get(k)
        if ids is not None:
            ids.discard(bid)
            if not ids:
                del self._by_key[k]

    def versions(self, bucket: str, key: str) -> list[Entry]:
        """The live entries of (bucket, key), ordered by version id then shard."""
        ids = sorted(self._by_key.get((bucket, key), ()))
        return [self._entries[i] for i in ids]

    def snapshot(self) -> dict[BlobId, tuple[int, Location]]:
        """A comparable view (seq and location per live id), for checking rebuilds."""
        return {bid: (e.seq, e.location) for bid, e in self._entries.items()}
