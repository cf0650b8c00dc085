"""The storage the Raft core reads, and :class:`MemoryStorage`, its in-memory implementation.

The core only *reads* a :class:`Storage`: it holds what the driver has made durable (hard
state, persisted entries, the latest snapshot). The driver *writes* it while handling a
:class:`~metadata.raft.ready.Ready` (``append``, ``set_hard_state``, ``apply_snapshot``)
and when it snapshots its state machine (``create_snapshot``, ``compact``). Entries the
core has appended but the driver has not yet persisted live in the core (its unstable
log) and are lost on a crash, exactly as on a real disk.

Backing it with :class:`metadata.storage.log.DiskLog`: ``term``/``first_index``/``last_index``
map to ``term_at``/``first_index``/``last_index`` (the log's ``first_index - 1`` is the
snapshot index, whose term comes from the snapshot meta); ``entries(lo, hi)`` is
``DiskLog.entries(lo, hi - 1)`` with :func:`unpack_entry`; ``append`` is
``truncate_suffix(first new index)`` when it overlaps, then ``append`` of
:func:`pack_entry` records; ``apply_snapshot`` is ``DiskLog.reset(index + 1)`` after the
snapshot file is durable; ``compact(i)`` is ``DiskLog.compact(i)``; the hard state goes to
the ``hard-state`` file (extended with ``commit``). The snapshot file's meta must also
record the :class:`~metadata.raft.records.ConfState`. Two details: ``DiskLog.compact``
drops whole segments, so its ``first_index - 1`` may be neither the snapshot index nor
readable; then report ``first_index() = DiskLog.first_index + 1`` (the term at
``first_index() - 1`` is then on disk). And the core reads the entries it replicates
through ``entries()``: keep recently appended entries in memory rather than re-reading
segment files for every APP.

Invariants of a Storage: ``first_index() - 1`` is the compaction point, whose term
``term()`` still answers; ``term(i)`` raises :class:`Compacted` below it and
:class:`Unavailable` above ``last_index()``; ``entries(lo, hi)`` returns ``[lo, hi)``
(at least one entry when ``lo < hi``, then as many as fit in ``max_bytes``).
"""
from __future__ import annotations

from typing import Any, Protocol

from metadata.raft.confchange import ConfChange, ConfChangeType
from metadata.raft.errors import Compacted, Unavailable
from metadata.raft.records import ConfState, Entry, EntryKind, HardState, Snapshot, SnapshotMeta


class Storage(Protocol):
    def initial_state(self) -> tuple[HardState, SnapshotMeta]:
        """The durable hard state and the meta of the latest snapshot (index 0 with an
        empty ConfState before the first snapshot)."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]: ...

    def term(self, index: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot (raise SnapshotTemporarilyUnavailable if it is being made)."""
        ...


def bootstrap_entries(voters: "list[str] | tuple[str, ...]", learners: "list[str] | tuple[str, ...]" = ()
                      ) -> tuple[list[Entry], HardState]:
    """The log and hard state every *initial* member of a new cluster starts with.

    The initial membership is written as CONF entries at indexes 1..n in term 1 (voters
    then learners, sorted), committed by construction, so every member's log starts
    identically and a node that joins later learns the whole membership history from the
    log (or from a snapshot). A node joining an existing cluster starts with an empty
    storage instead (it cannot campaign and waits for the leader)."""
    changes = [ConfChange(ConfChangeType.ADD_VOTER, v) for v in sorted(set(voters))]
    changes += [ConfChange(ConfChangeType.ADD_LEARNER, lr) for lr in sorted(set(learners) - set(voters))]
    if not changes or not voters:
        raise ValueError("a new cluster needs at least one voter")
    entries = [Entry(i + 1, 1, cc.encode(), EntryKind.CONF) for i, cc in enumerate(changes)]
    return entries, HardState(1, "", len(entries))


def pack_entry(e: Entry) -> bytes:
    """The payload of a disk-log record for ``e`` (its kind, then its data)."""
    return bytes((e.kind,)) + e.data


def unpack_entry(index: int, term: int, payload: bytes) -> Entry:
    """The entry of a disk-log record written with :func:`pack_entry`."""
    return Entry(index, term, payload[1:], EntryKind(payload[0]))


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix of ``entries`` within ``max_bytes`` payload bytes (at least one)."""
    if max_bytes is None or len(entries) <= 1:
        return entries
    size = len(entries[0].data)
    for n in range(1, len(entries)):
        size += len(entries[n].data)
        if size > max_bytes:
            return entries[:n]
    return entries


class MemoryStorage:
    """A :class:`Storage` in memory; in the simulation it plays a node's disk."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self._snap = Snapshot(SnapshotMeta(0, 0, ConfState()), None)
        self._base_index = 0  # the compaction point: entries start at _base_index + 1
        self._base_term = 0
        self._ents: list[Entry] = []

    @classmethod
    def bootstrapped(cls, voters: "list[str] | tuple[str, ...]",
                     learners: "list[str] | tuple[str, ...]" = ()) -> "MemoryStorage":
        """The storage of an initial member of a new cluster (see bootstrap_entries)."""
        st = cls()
        entries, hs = bootstrap_entries(voters, learners)
        st.append(entries)
        st.set_hard_state(hs)
        return st

    # --- read side (the core) ---------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, SnapshotMeta]:
        return self.hard_state, self._snap.meta

    def first_index(self) -> int:
        return self._base_index + 1

    def last_index(self) -> int:
        return self._base_index + len(self._ents)

    def term(self, index: int) -> int:
        if index == self._base_index:
            return self._base_term
        if index < self._base_index:
            raise Compacted(index)
        if index > self._base_index + len(self._ents):
            raise Unavailable(index)
        return self._ents[index - self._base_index - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        if lo <= self._base_index:
            raise Compacted(lo)
        if hi > self.last_index() + 1:
            raise Unavailable(hi)
        off = self._base_index + 1
        return limit_size(self._ents[lo - off : hi - off], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snap

    # --- write side (the driver) ------------------------------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def append(self, entries: "list[Entry] | tuple[Entry, ...]") -> None:
        """Append, first discarding any entries at or after the first new index."""
        if not entries:
            return
        first = entries[0].index
        if first > self.last_index() + 1:
            raise ValueError(f"append at {first} leaves a gap after {self.last_index()}")
        if first <= self._base_index:  # already compacted: keep only the new part
            entries = entries[self._base_index + 1 - first :]
            if not entries:
                return
            first = entries[0].index
        del self._ents[first - self._base_index - 1 :]
        self._ents.extend(entries)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by ``snap`` (InstallSnapshot on a follower)."""
        if snap.meta.index <= self._snap.meta.index:
            raise ValueError(f"snapshot {snap.meta.index} is not newer than {self._snap.meta.index}")
        self._snap = snap
        self._base_index, self._base_term = snap.meta.index, snap.meta.term
        self._ents = []

    def create_snapshot(self, index: int, conf_state: ConfState, data: Any) -> Snapshot:
        """Record a snapshot of the state machine at ``index`` (which must be in the log)."""
        if index <= self._snap.meta.index:
            raise ValueError(f"snapshot {index} is not newer than {self._snap.meta.index}")
        self._snap = Snapshot(SnapshotMeta(index, self.term(index), conf_state), data)
        return self._snap

    def compact(self, index: int) -> None:
        """Discard entries up to ``index`` (at most the snapshot index)."""
        if index <= self._base_index:
            return
        if index > self._snap.meta.index:
            raise ValueError(f"cannot compact to {index} beyond the snapshot at {self._snap.meta.index}")
        self._base_term = self.term(index)
        del self._ents[: index - self._base_index]
        self._base_index = index
