"""Raft messages: one frozen, slotted :class:`Message` with a :class:`MessageType`, and its
versioned JSON-able wire form.

Message types (who sends them, what the fields mean):

- ``VOTE``/``PRE_VOTE`` (candidate -> voters): ``term`` is the term campaigned for,
  ``index``/``log_term`` the candidate's last entry, ``context == CAMPAIGN_TRANSFER`` for
  an election started by a leadership transfer (it overrides the leader lease).
- ``VOTE_RESP``/``PRE_VOTE_RESP``: ``reject`` says whether the vote was refused.
- ``APP`` (leader -> follower): ``entries`` follow the entry ``index`` whose term is
  ``log_term``; ``commit`` is the leader's commit index.
- ``APP_RESP``: on success ``index`` is the follower's last index matching the leader;
  on ``reject`` ``index`` is the rejected ``APP``'s index and ``reject_hint``/``log_term``
  the follower's guess of the last matching entry (fast backtracking, as etcd).
- ``HEARTBEAT`` (leader -> follower): ``commit`` is min(follower match, leader commit);
  ``context`` is the newest pending ReadIndex context and ``index`` the leader's tick
  count when sent (a lease round), both echoed in ``HEARTBEAT_RESP``.
- ``SNAP`` (leader -> follower): ``snapshot`` holds the snapshot (InstallSnapshot). On the
  wire only ``snapshot.meta`` travels in the JSON; the driver streams ``snapshot.data`` in
  chunks next to it and fills ``data`` back in before stepping the message.
- ``TIMEOUT_NOW`` (leader -> transfer target): campaign now, skipping pre-vote.
- ``READ_INDEX`` (follower -> leader, ``term == 0``): a forwarded ReadIndex request whose
  ``context`` identifies it; ``READ_INDEX_RESP`` returns the read ``index``.

Invariants: ``term == 0`` only on ``READ_INDEX`` (forwarded requests are not bound to a
term). ``encode`` output starts with ``"v": WIRE_VERSION``; ``decode`` validates types and
raises ``ValueError`` on anything malformed.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from metadata.raft.records import Entry, Snapshot, SnapshotMeta, b64, unb64

WIRE_VERSION = 1
CAMPAIGN_TRANSFER = b"transfer"


class MessageType(enum.Enum):
    VOTE = "vote"
    VOTE_RESP = "vote_resp"
    PRE_VOTE = "pre_vote"
    PRE_VOTE_RESP = "pre_vote_resp"
    APP = "app"
    APP_RESP = "app_resp"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESP = "heartbeat_resp"
    SNAP = "snap"
    TIMEOUT_NOW = "timeout_now"
    READ_INDEX = "read_index"
    READ_INDEX_RESP = "read_index_resp"


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: str
    frm: str
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    snapshot: Snapshot | None = None

    def encode(self) -> dict[str, Any]:
        """The versioned JSON-able form (``snapshot.data`` is not included)."""
        d: dict[str, Any] = {"v": WIRE_VERSION, "type": self.type.value, "to": self.to, "from": self.frm,
                             "term": self.term}
        if self.log_term:
            d["log_term"] = self.log_term
        if self.index:
            d["index"] = self.index
        if self.entries:
            d["entries"] = [e.to_dict() for e in self.entries]
        if self.commit:
            d["commit"] = self.commit
        if self.reject:
            d["reject"] = True
        if self.reject_hint:
            d["reject_hint"] = self.reject_hint
        if self.context:
            d["context"] = b64(self.context)
        if self.snapshot is not None:
            d["snapshot"] = self.snapshot.meta.to_dict()
        return d

    @classmethod
    def decode(cls, d: dict[str, Any]) -> "Message":
        """Rebuild a message from :meth:`encode` output; ``snapshot.data`` is ``None``."""
        try:
            if d.get("v") != WIRE_VERSION:
                raise ValueError(f"unsupported raft message version {d.get('v')!r}")
            ints = {k: d.get(k, 0) for k in ("term", "log_term", "index", "commit", "reject_hint")}
            for k, v in ints.items():
                if type(v) is not int or v < 0:
                    raise ValueError(f"field {k} must be a non-negative integer")
            to, frm = d["to"], d["from"]
            if not isinstance(to, str) or not isinstance(frm, str):
                raise ValueError("to/from must be strings")
            reject = d.get("reject", False)
            if not isinstance(reject, bool):
                raise ValueError("reject must be a boolean")
            snap = d.get("snapshot")
            return cls(
                type=MessageType(d["type"]), to=to, frm=frm, term=ints["term"], log_term=ints["log_term"],
                index=ints["index"], entries=tuple(Entry.from_dict(e) for e in d.get("entries", ())),
                commit=ints["commit"], reject=reject, reject_hint=ints["reject_hint"],
                context=unb64(d.get("context", "")),
                snapshot=Snapshot(SnapshotMeta.from_dict(snap)) if snap is not None else None,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed raft message: {exc!r}") from None
