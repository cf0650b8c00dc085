"""Membership changes, one server at a time (Raft dissertation, chapter 4).

A :class:`ConfChange` travels in an ``EntryKind.CONF`` log entry. Rules:

- **Effect on append.** A node uses the configuration of the newest CONF entry in its
  log, committed or not (as the dissertation prescribes); if that entry is later
  truncated away, the node falls back to the previous configuration. Taking effect on
  append (not on apply) means every node's configuration differs from the leader's by at
  most one server, so the majorities of any two configurations in use overlap.
- **One at a time.** A leader appends a CONF entry only when no earlier CONF entry in its
  log is uncommitted, and only after it has committed an entry of its own term (the fix
  for the single-server change bug: a new leader first commits its no-op).
- **Learners** receive the log but never vote, count towards no quorum and never
  campaign. ``ADD_VOTER`` of a learner promotes it; ``ADD_VOTER`` of an unknown node adds
  it directly as a voter; ``REMOVE`` removes a voter or a learner. Demoting a voter to a
  learner and removing the last voter are refused.

:func:`validate` raises for a change that makes no sense against a configuration;
:func:`apply_change` is total (an invalid change, which validation keeps out of the log,
leaves the configuration unchanged) so replaying a log never fails.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from metadata.raft.errors import ConfChangeRejected
from metadata.raft.records import ConfState

CONF_CHANGE_VERSION = 1


class ConfChangeType(enum.Enum):
    ADD_VOTER = "add_voter"
    ADD_LEARNER = "add_learner"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: str
    context: bytes = b""  # opaque to the core, e.g. the new node's address

    def encode(self) -> bytes:
        d: dict[str, Any] = {"v": CONF_CHANGE_VERSION, "type": self.type.value, "node": self.node_id}
        if self.context:
            d["context"] = self.context.decode("latin-1")
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> "ConfChange":
        """Raises ValueError for anything that is not an encoded ConfChange."""
        try:
            d = json.loads(data)
            if d.get("v") != CONF_CHANGE_VERSION or not isinstance(d["node"], str) or not d["node"]:
                raise ValueError("bad conf change")
            return cls(ConfChangeType(d["type"]), d["node"], d.get("context", "").encode("latin-1"))
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise ValueError(f"malformed conf change: {exc!r}") from None


def validate(cs: ConfState, cc: ConfChange) -> None:
    """Raise :class:`ConfChangeRejected` unless ``cc`` changes ``cs`` sensibly."""
    nid = cc.node_id
    if not nid:
        raise ConfChangeRejected("a conf change needs a node id")
    if cc.type is ConfChangeType.ADD_VOTER and nid in cs.voters:
        raise ConfChangeRejected(f"{nid} is already a voter")
    if cc.type is ConfChangeType.ADD_LEARNER:
        if nid in cs.voters:
            raise ConfChangeRejected(f"{nid} is a voter; demotion to learner is not supported")
        if nid in cs.learners:
            raise ConfChangeRejected(f"{nid} is already a learner")
    if cc.type is ConfChangeType.REMOVE:
        if nid not in cs.members():
            raise ConfChangeRejected(f"{nid} is not a member")
        if cs.voters == {nid}:
            raise ConfChangeRejected(f"{nid} is the last voter")


def apply_change(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after ``cc`` (unchanged when ``cc`` is not valid for ``cs``)."""
    try:
        validate(cs, cc)
    except ConfChangeRejected:
        return cs
    nid = cc.node_id
    if cc.type is ConfChangeType.ADD_VOTER:
        return ConfState(cs.voters | {nid}, cs.learners - {nid})
    if cc.type is ConfChangeType.ADD_LEARNER:
        return ConfState(cs.voters, cs.learners | {nid})
    return ConfState(cs.voters - {nid}, cs.learners - {nid})


class ConfHistory:
    """The configuration at every point of a node's log (CONF entries above a base).

    ``base`` is the configuration at ``base_index`` (the snapshot the log starts from);
    ``changes`` holds ``(index, configuration after that entry)`` for the CONF entries in
    the log above it, ascending. Truncating the log drops the changes it removes.
    """

    __slots__ = ("base_index", "base", "changes")

    def __init__(self, base_index: int, base: ConfState) -> None:
        self.base_index = base_index
        self.base = base
        self.changes: list[tuple[int, ConfState]] = []

    @property
    def current(self) -> ConfState:
        return self.changes[-1][1] if self.changes else self.base

    @property
    def last_index(self) -> int:
        """The index of the newest CONF entry (or the base index)."""
        return self.changes[-1][0] if self.changes else self.base_index

    def at(self, index: int) -> ConfState:
        """The configuration in force once entry ``index`` is in the log."""
        cs = self.base
        for i, c in self.changes:
            if i > index:
                break
            cs = c
        return cs

    def push(self, index: int, cc: ConfChange) -> ConfState:
        cs = apply_change(self.current, cc)
        self.changes.append((index, cs))
        return cs

    def truncate_from(self, index: int) -> None:
        while self.changes and self.changes[-1][0] >= index:
            self.changes.pop()

    def fold_up_to(self, index: int) -> None:
        """Forget changes at or below ``index`` (the log was compacted there)."""
        while self.changes and self.changes[0][0] <= index:
            self.base_index, self.base = self.changes.pop(0)
