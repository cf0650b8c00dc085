"""Errors raised by the Raft core to its driver.

They are the core's own (:class:`RaftError`), independent of any service's error types:
the driver (:mod:`metadata.replication.driver`) maps them to what its clients see.

Proposal-side: :class:`NotLeader` (``leader``: the known leader id, or ``None``) means
"ask that node"; :class:`ProposalDropped` means "retry shortly" (a leadership transfer or
a membership change is in progress, or the new leader has not committed its first
entry); :class:`ConfChangeRejected` and :class:`TransferRejected` are requests that make no
sense against the current configuration.

Storage-side errors (:class:`Compacted`, :class:`Unavailable`,
:class:`SnapshotTemporarilyUnavailable`) are raised by a
:class:`~metadata.raft.storage.Storage` and handled inside the core.
"""
from __future__ import annotations

__all__ = ["RaftError", "NotLeader", "ProposalDropped", "ConfChangeRejected", "TransferRejected", "Compacted",
           "Unavailable", "SnapshotTemporarilyUnavailable"]


class RaftError(Exception):
    """Base of every error the Raft core raises."""


class NotLeader(RaftError):
    """This node is not the leader; ``leader`` names the one it knows, if any."""

    def __init__(self, message: str = "this node is not the leader", leader: str | None = None) -> None:
        super().__init__(message)
        self.leader = leader


class ProposalDropped(RaftError):
    """The leader cannot accept this proposal right now; retry shortly."""


class ConfChangeRejected(RaftError):
    """A membership change that makes no sense against the current configuration."""


class TransferRejected(RaftError):
    """A leadership transfer to a node that cannot take it (not a voter)."""


class Compacted(RaftError):
    """The requested log index is at or below the storage's snapshot (compacted away)."""


class Unavailable(RaftError):
    """The requested log index is above the storage's last index."""


class SnapshotTemporarilyUnavailable(RaftError):
    """The storage cannot produce a snapshot right now (the leader retries later)."""
