"""Pending ReadIndex requests on a leader (Raft dissertation §6.4; etcd's read_only.go).

A request records the leader's commit index when it arrived and waits until a quorum of
voters has acknowledged a heartbeat sent after it (the heartbeat carries the request's
context, followers echo it). Acknowledging a request also acknowledges every earlier one:
:meth:`ReadQueue.advance` releases all requests up to and including the acknowledged one,
in arrival order.

Invariants: contexts are unique among pending requests (a duplicate is ignored: the first
one answers it); the queue order is the arrival order; the read index of a later request
is never lower than an earlier one's.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReadRequest:
    ctx: bytes
    frm: str  # the node that asked (this node for a local read)
    index: int  # the leader's commit index when the request arrived
    acks: set[str] = field(default_factory=set)


class ReadQueue:
    __slots__ = ("pending", "order")

    def __init__(self) -> None:
        self.pending: dict[bytes, ReadRequest] = {}
        self.order: list[bytes] = []

    def add(self, index: int, ctx: bytes, frm: str) -> None:
        if ctx in self.pending:
            return
        self.pending[ctx] = ReadRequest(ctx, frm, index)
        self.order.append(ctx)

    def ack(self, frm: str, ctx: bytes) -> set[str] | None:
        """Record ``frm``'s acknowledgement; the acks so far, or None for an unknown ctx."""
        req = self.pending.get(ctx)
        if req is None:
            return None
        req.acks.add(frm)
        return req.acks

    def advance(self, ctx: bytes) -> list[ReadRequest]:
        """Release every request up to and including ``ctx``, oldest first."""
        if ctx not in self.pending:
            return []
        n = self.order.index(ctx) + 1
        released = [self.pending.pop(c) for c in self.order[:n]]
        del self.order[:n]
        return released

    def last_ctx(self) -> bytes:
        return self.order[-1] if self.order else b""

    def __len__(self) -> int:
        return len(self.order)
