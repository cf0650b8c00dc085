"""Linearizable reads waiting at a leader, batched into ReadIndex rounds.

A read is a future. Reads that arrive during one turn of the driver's loop form one batch
and share one ``read_index`` context (one heartbeat round confirms leadership for all of
them); when the core confirms the context with a read index, the batch waits until the
state machine has applied that index, then every future resolves (the caller then reads
the state, which includes at least everything committed when its read arrived).

Invariants: contexts are unique (node id + counter); a future resolves once (a result, or
the error given to :meth:`PendingReads.fail`); confirmed batches are served in index order
as ``applied`` grows.
"""
from __future__ import annotations

import asyncio
import itertools
from typing import Callable, Iterable

from metadata.raft import NotLeader, ReadState
from objstore.errors import ObjstoreError


class PendingReads:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._new: list[asyncio.Future] = []
        self._by_ctx: dict[bytes, list[asyncio.Future]] = {}
        self._confirmed: list[tuple[int, list[asyncio.Future]]] = []
        self._counter = itertools.count(1)

    def add(self, fut: asyncio.Future) -> None:
        self._new.append(fut)

    def start_round(self, read_index: Callable[[bytes], None], not_leader: Callable[[], ObjstoreError]) -> None:
        """Give every read that arrived since the last round one context, and ask the core."""
        if not self._new:
            return
        batch, self._new = self._new, []
        ctx = f"{self.node_id}:{next(self._counter)}".encode()
        try:
            read_index(ctx)
        except NotLeader:
            _settle(batch, error=not_leader)
            return
        self._by_ctx[ctx] = batch

    def confirmed(self, states: "Iterable[ReadState]", applied: int) -> None:
        """The core confirmed these contexts; serve what ``applied`` already covers."""
        for rs in states:
            batch = self._by_ctx.pop(rs.ctx, None)
            if batch:
                self._confirmed.append((rs.index, batch))
        self.serve(applied)

    def serve(self, applied: int) -> None:
        still = []
        for index, batch in self._confirmed:
            if index <= applied:
                _settle(batch)
            else:
                still.append((index, batch))
        self._confirmed = still

    def fail(self, error: Callable[[], ObjstoreError]) -> None:
        """Every read still waiting fails (leadership lost, shutdown)."""
        for batch in [self._new, *self._by_ctx.values(), *(b for _, b in self._confirmed)]:
            _settle(batch, error=error)
        self._new, self._by_ctx, self._confirmed = [], {}, []

    def prune(self) -> None:
        """Forget rounds whose callers all gave up (their answer may never come)."""
        self._by_ctx = {c: b for c, b in self._by_ctx.items() if not all(f.done() for f in b)}


def _settle(batch: "list[asyncio.Future]", error: Callable[[], ObjstoreError] | None = None) -> None:
    for f in batch:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error())
