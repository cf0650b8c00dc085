"""What the core asks its driver to do, as data: :class:`Ready`, and the node's status.

A driver takes one Ready at a time (``RaftNode.ready()``), does the work in the order
below, then calls ``RaftNode.advance(ready)``. Ordering rules, field by field:

1. ``early_messages`` may be sent at once, before or while this Ready is persisted. They
   are a leader's replication traffic (APP, HEARTBEAT, SNAP, TIMEOUT_NOW,
   READ_INDEX_RESP) in a term that is already durable; the leader counts its own copy of
   the entries only after ``advance`` (Raft dissertation §10.2.1). Every *earlier*
   Ready must be fully persisted before this one's early messages go out. A simple
   driver may send them together with ``messages``.
2. ``snapshot`` (if any) is installed durably: storage replaced by it, the state
   machine restored from its data.
3. ``entries`` are appended durably, replacing any persisted entries at or after
   ``entries[0].index``.
4. ``hard_state`` (if not None) is written durably, after the entries (a crash between
   the two leaves an older commit index, which is safe; never the reverse). Steps 2-4
   may be one atomic write. ``must_sync`` says whether an fsync is needed (False when
   only the commit index moved).
5. ``messages`` are sent, only now: they include votes and acknowledgements that promise
   the state above is durable.
6. ``committed_entries`` are applied to the state machine in order (a NOOP entry applies
   nothing but counts as applied; CONF entries have already taken effect in the core and
   need no action, though the driver may record them).
7. ``read_states``: each (ctx, index) is a confirmed ReadIndex; serve the read identified
   by ``ctx`` once the state machine's applied index is >= ``index``.
8. ``soft_state`` (if not None) reports a new leader or role, for routing and metrics.

Then ``advance(ready)``. Committed entries are always either durable already or among
this Ready's ``entries``, so applying them after step 3 never applies a lost entry.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from metadata.raft.messages import Message
from metadata.raft.records import ConfState, Entry, HardState, Snapshot


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    leader: str  # "" when unknown
    role: Role


@dataclass(frozen=True, slots=True)
class ReadState:
    ctx: bytes
    index: int


@dataclass(frozen=True, slots=True)
class Ready:
    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    early_messages: tuple[Message, ...] = ()
    messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    id: str
    role: Role
    leader: str
    term: int
    vote: str
    commit: int
    applied: int
    first_index: int
    last_index: int
    conf_state: ConfState
    lead_transferee: str = ""
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)  # leader only

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role.value, "leader": self.leader, "term": self.term,
                "vote": self.vote, "commit": self.commit, "applied": self.applied,
                "first_index": self.first_index, "last_index": self.last_index,
                "conf_state": self.conf_state.to_dict(), "lead_transferee": self.lead_transferee,
                "progress": self.progress}
