"""Errors raised by the Raft core to its driver.

Proposal-side errors are :class:`~objstore.errors.ObjstoreError` subclasses so the
metadata service can return them to clients as is: :class:`NotLeader` (with
``extra['leader']``, the known leader id or ``None``) means "ask that node";
:class:`ProposalDropped` (503) means "retry shortly" (a leadership transfer or a
membership change is in progress, or the new leader has not committed its first entry).

Storage-side errors are plain exceptions raised by a :class:`~metadata.raft.storage.Storage`
and handled inside the core.
"""
from __future__ import annotations

from objstore.errors import InvalidArgument, NotLeader, ServiceUnavailable

__all__ = ["NotLeader", "ProposalDropped", "ConfChangeRejected", "Compacted", "Unavailable",
           "SnapshotTemporarilyUnavailable"]


class ProposalDropped(ServiceUnavailable):
    """The leader cannot accept this proposal right now; retry shortly."""

    default_message = "The metadata leader cannot accept this proposal right now. Please retry."


class ConfChangeRejected(InvalidArgument):
    """A membership change that makes no sense against the current configuration."""


class Compacted(Exception):
    """The requested log index is at or below the storage's snapshot (compacted away)."""


class Unavailable(Exception):
    """The requested log index is above the storage's last index."""


class SnapshotTemporarilyUnavailable(Exception):
    """The storage cannot produce a snapshot right now (the leader retries later)."""
