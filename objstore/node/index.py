"""The in-memory index of a storage node: blob id -> location, and (bucket, key) -> blob ids.

Pure data structure, no IO. It is rebuilt at start-up from the records found on disk and
kept current as records commit.

Invariants:
- For one blob id the record with the highest ``seq`` wins: a blob record replaces any
  older one, a tombstone removes any older one and suppresses any older record applied
  later. Applying the same set of records in any order yields the same index, so the live
  index always equals the one rebuilt from the files.
- ``live_bytes`` is the sum of ``size`` over live entries.
"""
from __future__ import annotations

from dataclasses import dataclass

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


class BlobIndex:
    def __init__(self) -> None:
        self._entries: dict[BlobId, Entry] = {}
        self._tombstones: dict[BlobId, int] = {}
        self._by_key: dict[tuple[str, str], set[BlobId]] = {}
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

    def apply(self, entry: Entry) -> Entry | None:
        """Install a committed blob record; returns the record that is now garbage, if any.

        That is the entry it replaced, or ``entry`` itself when an equal-or-newer record or
        tombstone already holds the id.
        """
        bid = entry.blob_id
        if self._tombstones.get(bid, -1) > entry.seq:
            return entry
        old = self._entries.get(bid)
        if old is not None:
            if old.seq >= entry.seq:
                return entry
            self._remove(old)
        self._entries[bid] = entry
        self._by_key.setdefault((entry.header.bucket, entry.header.key), set()).add(bid)
        self.live_bytes += entry.header.size
        return old

    def apply_tombstone(self, blob_id: BlobId, seq: int) -> Entry | None:
        """Record a delete committed at ``seq``; returns the entry it removed, if any."""
        if self._tombstones.get(blob_id, -1) < seq:
            self._tombstones[blob_id] = seq
        old = self._entries.get(blob_id)
        if old is None or old.seq > seq:
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

    def _remove(self, entry: Entry) -> None:
        bid = entry.blob_id
        del self._entries[bid]
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
