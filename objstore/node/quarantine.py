"""Quarantined records: corrupt blob records a storage node must never serve again.

A record is named by its blob id and commit ``seq``. The list is kept in memory and
persisted as ``quarantine.json`` in the data dir (format 1, written with
:func:`objstore.durable_io.atomic_write`), with the node's running totals of corrupt
records found and repaired. Pure apart from :func:`load` and :func:`save`.

Invariants:
- A quarantined record is never in the index: the store drops it when it is quarantined
  and again after every index rebuild (the record is still in its segment or blob file,
  so the rebuild finds it). GET and HEAD of its blob id then answer 404 NoSuchKey, which
  makes a gateway fail over to another replica or shard at once.
- An entry leaves the list when its blob id gets a newer record (a repair rewrote it:
  counted in ``repaired_total``) or a tombstone (deleted: not counted).
- Bounded: at most ``limit`` entries (default :data:`MAX_ENTRIES`); past that the oldest is
  forgotten. A forgotten record may be indexed again after a restart, but reads verify
  every block before a byte leaves the node, so it is refused (and quarantined) again,
  never served.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Iterator

from objstore.durable_io import atomic_write
from objstore.node.blob import BlobId

FILE_NAME = "quarantine.json"
FORMAT = 1
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One quarantined record and what is known of it (from its header)."""

    version_id: str
    shard: int
    seq: int
    bucket: str
    key: str
    policy: str
    file: str  # where the record is, relative to the data dir
    reason: str
    at: float  # unix seconds when it was quarantined

    @property
    def blob_id(self) -> BlobId:
        return BlobId(self.version_id, self.shard)


class QuarantineList:
    """The quarantined records of one node, oldest first, and the corruption totals."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self.limit = limit
        self._entries: OrderedDict[BlobId, Quarantined] = OrderedDict()
        self.corrupt_total = 0
        self.repaired_total = 0
        self.forgotten = 0  # entries pushed out by the limit since start-up

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Quarantined]:
        return iter(list(self._entries.values()))

    def get(self, blob_id: BlobId) -> Quarantined | None:
        return self._entries.get(blob_id)

    def add(self, q: Quarantined) -> None:
        """Quarantine ``q`` (replacing an older entry of its id) and count it as corrupt."""
        self._entries.pop(q.blob_id, None)
        self._entries[q.blob_id] = q
        self.corrupt_total += 1
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)
            self.forgotten += 1

    def resolve(self, blob_id: BlobId, seq: int, repaired: bool) -> Quarantined | None:
        """A record of ``blob_id`` committed at ``seq`` (a newer write when ``repaired``, else a
        tombstone): returns the entry it resolves (now removed), if any."""
        q = self._entries.get(blob_id)
        if q is None or seq <= q.seq:
            return None
        del self._entries[blob_id]
        if repaired:
            self.repaired_total += 1
        return q

    def forget(self, blob_id: BlobId) -> Quarantined | None:
        """Remove an entry without counting it as repaired (its record is gone)."""
        return self._entries.pop(blob_id, None)

    def to_json(self) -> bytes:
        return json.dumps({
            "format": FORMAT,
            "corrupt_total": self.corrupt_total,
            "repaired_total": self.repaired_total,
            "entries": [asdict(q) for q in self._entries.values()],
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, limit: int = MAX_ENTRIES) -> "QuarantineList":
        """Raises ValueError when ``raw`` is not a quarantine list of a known format."""
        d = json.loads(raw)
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"unknown quarantine list format {d.get('format') if isinstance(d, dict) else d!r}")
        out = cls(limit)
        for item in d.get("entries", []):
            q = Quarantined(**item)
            out._entries[q.blob_id] = q
        while len(out._entries) > limit:
            out._entries.popitem(last=False)
        out.corrupt_total = int(d.get("corrupt_total", 0))
        out.repaired_total = int(d.get("repaired_total", 0))
        return out


def load(data_dir: str, limit: int = MAX_ENTRIES) -> QuarantineList:
    """The persisted list of ``data_dir`` (empty if none); raises ValueError/OSError if unreadable."""
    try:
        with open(os.path.join(data_dir, FILE_NAME), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return QuarantineList(limit)
    return QuarantineList.from_json(raw, limit)


def save(data_dir: str, raw: bytes) -> None:
    """Replace the persisted list by ``raw`` (:meth:`QuarantineList.to_json`) durably."""
    atomic_write(os.path.join(data_dir, FILE_NAME), raw)
