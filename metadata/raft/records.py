"""The records of the Raft core: log entries, hard state, configurations and snapshots.

All are frozen, slotted dataclasses; each has ``to_dict``/``from_dict`` for the versioned
JSON wire form (bytes as base64). Node ids are non-empty strings; ``""`` means "none".

Invariants:
- An :class:`Entry` never changes once created; the same object may sit in the core's
  unstable log, a :class:`~metadata.raft.ready.Ready`, storage and a message at once.
- ``EntryKind.NOOP`` entries (appended by every new leader) carry no data; the driver
  applies nothing for them but still advances its applied index.
- ``EntryKind.CONF`` entries carry an encoded :class:`~metadata.raft.confchange.ConfChange`;
  the core interprets them itself (see :mod:`metadata.raft.confchange`).
"""
from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field
from typing import Any


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class EntryKind(enum.IntEnum):
    NORMAL = 0  # an application command
    CONF = 1  # a membership change, interpreted by the core
    NOOP = 2  # appended by a new leader to commit an entry of its term


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL

    def to_dict(self) -> dict[str, Any]:
        return {"i": self.index, "t": self.term, "k": int(self.kind), "d": b64(self.data)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Entry":
        return cls(int(d["i"]), int(d["t"]), unb64(d["d"]), EntryKind(int(d["k"])))


def entries_size(entries: "list[Entry] | tuple[Entry, ...]") -> int:
    """The payload bytes of ``entries`` (what batching limits count)."""
    return sum(len(e.data) for e in entries)


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before messages are sent: term, vote and commit index."""

    term: int = 0
    vote: str = ""
    commit: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"term": self.term, "vote": self.vote, "commit": self.commit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HardState":
        return cls(int(d["term"]), str(d["vote"]), int(d["commit"]))


@dataclass(frozen=True, slots=True)
class ConfState:
    """A cluster configuration: the voters and the learners (disjoint sets)."""

    voters: frozenset[str] = field(default_factory=frozenset)
    learners: frozenset[str] = field(default_factory=frozenset)

    def members(self) -> frozenset[str]:
        return self.voters | self.learners

    def to_dict(self) -> dict[str, Any]:
        return {"voters": sorted(self.voters), "learners": sorted(self.learners)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ConfState":
        return cls(frozenset(map(str, d["voters"])), frozenset(map(str, d["learners"])))


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot stands in the log and the configuration at that index."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "term": self.term, "conf_state": self.conf_state.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SnapshotMeta":
        return cls(int(d["index"]), int(d["term"]), ConfState.from_dict(d["conf_state"]))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot: its metadata and the state machine's data.

    ``data`` is opaque to the core (bytes in memory, a file reference for a disk-backed
    storage, or ``None`` when a decoded message still waits for its streamed chunks); the
    core only passes it from storage to a message and from a message to a Ready.
    """

    meta: SnapshotMeta
    data: Any = None
