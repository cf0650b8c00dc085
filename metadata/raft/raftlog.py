"""The core's view of its log: the durable :class:`~metadata.raft.storage.Storage` plus the
unstable tail (entries and possibly a snapshot not yet persisted by the driver).

Indexes: ``committed`` entries are known to be on a quorum; ``applying`` is the last
entry handed to the driver to apply (in a Ready); ``applied`` the last one the driver
confirmed by ``advance``. Always ``applied <= applying <= committed <= last_index``
(except that a node restarting may have ``committed`` below the storage's snapshot
index; it is raised to it on start).

Unstable invariants: ``unstable`` entries are consecutive from ``offset``; when present,
they win over storage entries at the same indexes (storage entries at or after
``offset`` are about to be overwritten). An unstable ``snapshot`` (received from the
leader) replaces the whole log: entries follow it from ``snapshot.index + 1``.
"""
from __future__ import annotations

from metadata.raft.errors import Compacted, Unavailable
from metadata.raft.records import Entry, Snapshot
from metadata.raft.storage import Storage, limit_size


class RaftLog:
    __slots__ = ("storage", "offset", "unstable", "snapshot", "committed", "applying", "applied",
                 "max_apply_bytes")

    def __init__(self, storage: Storage, max_apply_bytes: int) -> None:
        self.storage = storage
        self.offset = storage.last_index() + 1  # index of unstable[0]
        self.unstable: list[Entry] = []
        self.snapshot: Snapshot | None = None  # unstable snapshot to install
        first = storage.first_index()
        self.committed = first - 1
        self.applying = first - 1
        self.applied = first - 1
        self.max_apply_bytes = max_apply_bytes

    # --- positions ------------------------------------------------------------------------

    def first_index(self) -> int:
        if self.snapshot is not None:
            return self.snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return self.offset - 1

    def last_term(self) -> int:
        return self.term(self.last_index())

    def term(self, index: int) -> int:
        """The term of entry ``index``; raises Compacted/Unavailable outside the log."""
        if index >= self.offset:
            k = index - self.offset
            if k < len(self.unstable):
                return self.unstable[k].term
            raise Unavailable(index)
        if self.snapshot is not None:
            if index == self.snapshot.meta.index:
                return self.snapshot.meta.term
            if index < self.snapshot.meta.index:
                raise Compacted(index)
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (Compacted, Unavailable):
            return 0

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, index: int, term: int) -> bool:
        """Whether a log ending at (index, term) is at least as up to date as ours (§5.4.1)."""
        last = self.last_index()
        lt = self.term(last)
        return term > lt or (term == lt and index >= last)

    # --- reading --------------------------------------------------------------------------

    def entries(self, lo: int, max_bytes: int | None) -> list[Entry]:
        """Entries from ``lo`` to the end, within ``max_bytes`` (at least one)."""
        return self.slice(lo, self.last_index() + 1, max_bytes)

    def slice(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        """Entries ``[lo, hi)`` within ``max_bytes``; raises Compacted below the log."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise Compacted(lo)
        out: list[Entry] = []
        if lo < self.offset:
            out = self.storage.entries(lo, min(hi, self.offset), max_bytes)
            if len(out) < min(hi, self.offset) - lo:  # the size limit cut it short
                return out
        if hi > self.offset:
            s = max(lo, self.offset) - self.offset
            out = out + self.unstable[s : hi - self.offset] if out else self.unstable[s : hi - self.offset]
        return limit_size(out, max_bytes)

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest (i, t) with i <= index and t <= term in our log (fast backtracking).

        Returns (index, 0) when the search runs into the compacted part."""
        while index > 0:
            try:
                t = self.term(index)
            except Unavailable:
                index = self.last_index()
                continue
            except Compacted:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def next_committed(self) -> list[Entry]:
        """Committed entries not yet handed out for applying (none while a snapshot waits)."""
        if self.snapshot is not None or self.applying >= self.committed:
            return []
        return self.slice(self.applying + 1, self.committed + 1, self.max_apply_bytes)

    def has_next_committed(self) -> bool:
        return self.snapshot is None and self.applying < self.committed

    # --- writing --------------------------------------------------------------------------

    def append(self, entries: "list[Entry] | tuple[Entry, ...]") -> int:
        """Append entries starting at ``entries[0].index``, replacing any suffix from there."""
        after = entries[0].index
        if after <= self.committed:
            raise AssertionError(f"append at {after} would overwrite committed entry {self.committed}")
        end = self.offset + len(self.unstable)
        if after == end:
            self.unstable.extend(entries)
        elif after <= self.offset:
            # Replace everything unstable; storage entries >= after are overwritten when persisted.
            self.offset = after
            self.unstable = list(entries)
        else:
            del self.unstable[after - self.offset :]
            self.unstable.extend(entries)
        return self.last_index()

    def maybe_append(self, index: int, log_term: int, commit: int,
                     entries: "tuple[Entry, ...]") -> tuple[int | None, int]:
        """Follower side of APP. Returns (last new index or None if (index, log_term) does not
        match our log, the first index rewritten or 0 if nothing was rewritten)."""
        if not self.match_term(index, log_term):
            return None, 0
        last_new = index + len(entries)
        conflict = 0
        if entries:
            last = self.last_index()
            if entries[0].index > last:
                conflict = entries[0].index
            else:
                for e in entries:
                    if e.index > last or not self.match_term(e.index, e.term):
                        conflict = e.index
                        break
        if conflict:
            if conflict <= self.committed:
                raise AssertionError(f"entry {conflict} conflicts with committed entry {self.committed}")
            self.append(entries[conflict - entries[0].index :])
        self.commit_to(min(commit, last_new))
        return last_new, conflict

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} is beyond the last index {self.last_index()}")
            self.committed = index

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log by an (unstable) snapshot received from the leader."""
        self.committed = snap.meta.index
        self.snapshot = snap
        self.offset = snap.meta.index + 1
        self.unstable = []

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (index, term) are durable (ignored if they were rewritten since)."""
        if index < self.offset or not self.unstable:
            return
        k = index - self.offset
        if k < len(self.unstable) and self.unstable[k].term == term:
            del self.unstable[: k + 1]
            self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == index:
            self.snapshot = None
