"""Commit manifests sent again, in the background, to owners whose store failed.

A manifest write answers once W of the key's owners stored the manifest (fewer is a 503:
the record committed in Raft but cannot be promised to quorum readers). An owner whose
store failed (down, cut off by a partition, past the lane's bound) would otherwise keep an
older manifest until some quorum read happened to repair it, and a quorum read that asked
only such owners would serve the older version without noticing (both answers agree), for
as long as no later write of the key came. So each owner that missed a manifest is sent it
again after growing delays (:data:`DELAYS`, about four minutes in all) until it stores it.

The retry is only ever *more* manifests on the key's own ring nodes: it changes no answer
(a write is still acknowledged by W owners or answered 503), and a node never replaces a
newer manifest by an older one, so a late store is harmless. It stops when the ring the
manifest was placed by is no longer current (the hand-over moves manifests to new owners),
when the node left the map, or when its delays run out (read repair remains). At most
:data:`MAX_PENDING` retries run at once; past that a failed store is not retried (logged
and counted in ``dropped``). Retries are gateway memory: a restarted gateway forgets them.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Sequence

log = logging.getLogger(__name__)

DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 60.0, 60.0)  # seconds before each attempt
MAX_PENDING = 1024  # manifests being retried at once, over all nodes

Attempt = Callable[[], Awaitable[bool]]  # True: done (stored, or no longer worth storing)


class ManifestRetries:
    """Bounded background retries of failed manifest stores; :meth:`close` cancels them."""

    def __init__(self, *, max_pending: int = MAX_PENDING, delays: Sequence[float] = DELAYS) -> None:
        self.max_pending = max_pending
        self.delays = tuple(delays)
        self.dropped = 0  # failed stores not retried because max_pending were running
        self._tasks: set[asyncio.Task] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def start(self, attempt: Attempt, what: str) -> bool:
        """Run ``attempt`` after each delay until it returns True; False when the bound
        left no room for it."""
        if len(self._tasks) >= self.max_pending:
            self.dropped += 1
            log.warning("%s not retried: %d manifest retries already running", what, len(self._tasks))
            return False
        task = asyncio.get_running_loop().create_task(self._run(attempt, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, attempt: Attempt, what: str) -> None:
        for delay in self.delays:
            await asyncio.sleep(delay)
            try:
                if await attempt():
                    return
            except Exception:  # noqa: BLE001 - a retry must not end on one unexpected error
                log.exception("retry of %s failed", what)
        log.warning("gave up retrying %s after %d attempts", what, len(self.delays))

    async def close(self) -> None:
        """Cancel every retry (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
