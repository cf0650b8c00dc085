"""Linearizable reads waiting at a leader, batched into ReadIndex rounds.

A read is a future. Reads waiting when a round starts form one batch and share one
``read_index`` context (one heartbeat round confirms leadership for all of them); when the
core confirms the context with a read index, the batch waits until the state machine has
applied that index, then every future resolves (the caller then reads the state, which
includes at least everything committed when its read arrived).

Only one round is in flight at a time (unless it is older than ``stale_after`` seconds,
when its messages may have been lost): reads that arrive meanwhile wait for the next
round, so under load each heartbeat round confirms many reads instead of a few.

Invariants: contexts are unique (node id + counter); a future resolves once (a result, or
the error given to :meth:`PendingReads.fail`); confirmed batches are served in index order
as ``applied`` grows.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from typing import Callable, Iterable

from metadata.raft import NotLeader, ReadState
from objstore.errors import ObjstoreError


class PendingReads:
    def __init__(self, node_id: str, stale_after: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node_id = node_id
        self.stale_after = stale_after
        self._clock = clock
        self._new: list[asyncio.Future] = []
        self._by_ctx: dict[bytes, list[asyncio.Future]] = {}
        self._started: dict[bytes, float] = {}
        self._confirmed: list[tuple[int, list[asyncio.Future]]] = []
        self._counter = itertools.count(1)

    def add(self, fut: asyncio.Future) -> None:
        self._new.append(fut)

    def start_round(self, read_index: Callable[[bytes], None], not_leader: Callable[[], ObjstoreError]) -> None:
        """Give every read that arrived since the last round one context, and ask the core."""
        if not self._new:
            return
        now = self._clock()
        if any(now - t < self.stale_after for c, t in self._started.items() if c in self._by_ctx):
            return  # a round is in flight: these reads join the next one
        batch, self._new = self._new, []
        ctx = f"{self.node_id}:{next(self._counter)}".encode()
        try:
            read_index(ctx)
        except NotLeader:
            _settle(batch, error=not_leader)
            return
        self._by_ctx[ctx] = batch
        self._started[ctx] = now

    def confirmed(self, states: "Iterable[ReadState]", applied: int) -> None:
        """The core confirmed these contexts; serve what ``applied`` already covers."""
        for rs in states:
            self._started.pop(rs.ctx, None)
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
        self._new, self._by_ctx, self._confirmed, self._started = [], {}, [], {}

    def prune(self) -> None:
        """Forget rounds whose callers all gave up (their answer may never come)."""
        self._by_ctx = {c: b for c, b in self._by_ctx.items() if not all(f.done() for f in b)}
        self._started = {c: t for c, t in self._started.items() if c in self._by_ctx}


def _settle(batch: "list[asyncio.Future]", error: Callable[[], ObjstoreError] | None = None) -> None:
    for f in batch:
        if not f.done():
            if error is None:
                f.set_result(None)
            else:
                f.set_exception(error())
