"""Commit-manifest writes to one storage node, coalesced while a write to it is in flight.

Every write, delete or tag change writes its commit manifest to the key's ring nodes
(:mod:`gateway.datapath.manifests`); under concurrency many such writes head for the same
node at once. Each node has one lane: a manifest that finds no write in flight to its node
goes at once, alone (``PUT /manifests``); those that come while one is in flight wait for
it and then go together in one ``PUT /manifests/batch`` (one request, one fsync on the
node). A node serves a call in ~0.4 ms of CPU whatever it carries, so at 64 concurrent
small PUTs (~3 manifest writes in flight per node) this saves most of those calls.

Invariants: a caller is answered success only once the call carrying its manifest
succeeded (the node's answer means durable); a failed call fails every manifest it carried (each caller
counts its node as failed, as before). Lanes are bounded: at most ``max_waiting``
manifests wait per node (more go alone, at once), at most ``max_batch`` per call, and an
idle lane holds nothing. Waiting is bounded in time too: a manifest whose call has not
started ``timeout`` seconds after it came is not sent, and its caller is failed
(ServiceUnavailable, as by a failed call). The call in flight when it came ends within
``timeout`` and its own call takes at most ``timeout``, so a caller waits at most about
twice the timeout, however deep the queue (on a node that takes connections but never
answers, a caller behind thousands of others would otherwise wait for every call ahead
of it, and hold up hand-over passes waiting for its write, :mod:`gateway.ring_epochs`).
The calls run as background tasks, so a caller that is cancelled does not cancel the
call that carries the other callers' manifests.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Coroutine

from objstore.errors import ServiceUnavailable
from objstore.manifest import CommitManifest
from objstore.node.client import StorageClient

MAX_BATCH = 256  # manifests in one batch call (the node takes up to 4096)
MAX_WAITING = 4096  # manifests waiting for one node; more are sent alone
Lane = tuple[str, int]  # a node's address and the ring epoch its manifests were placed by
Waiting = tuple[CommitManifest, "asyncio.Future[None]", float]  # manifest, its caller, when it came


class ManifestLanes:
    """``spawn`` runs a coroutine in the background (the gateway's ``background``);
    ``clock`` tells the time waiting is measured by (monotonic seconds)."""

    def __init__(self, storage: StorageClient, spawn: Callable[[Coroutine[Any, Any, Any]], None], *,
                 max_batch: int = MAX_BATCH, max_waiting: int = MAX_WAITING, timeout: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._storage = storage
        self._spawn = spawn
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.timeout = timeout
        self._clock = clock
        self._waiting: dict[Lane, list[Waiting]] = {}
        self._busy: set[Lane] = set()  # lanes with a call in flight
        self.calls = 0  # calls made (manifests written / calls shows the coalescing)

    async def put(self, address: str, manifest: CommitManifest, ring_epoch: int = 0) -> None:
        """Store ``manifest``, placed by the ring of ``ring_epoch``, durably on the node at
        ``address``; raises what the call raised."""
        lane = (address, ring_epoch)
        waiting = self._waiting.setdefault(lane, [])
        if lane in self._busy and len(waiting) >= self.max_waiting:
            self.calls += 1
            await self._storage.put_manifest(address, manifest, timeout=self.timeout, ring_epoch=ring_epoch)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting.append((manifest, done, self._clock()))
        if lane not in self._busy:
            self._busy.add(lane)
            self._spawn(self._drain(lane))
        await done

    async def _drain(self, lane: Lane) -> None:
        address, ring_epoch = lane
        batch: list[Waiting] = []
        try:
            while waiting := self._waiting.get(lane):
                self._expire(address, waiting)
                batch, waiting[:] = waiting[:self.max_batch], waiting[self.max_batch:]
                if not batch:
                    continue
                error: BaseException | None = None
                self.calls += 1
                try:
                    if len(batch) == 1:
                        await self._storage.put_manifest(address, batch[0][0], timeout=self.timeout,
                                                         ring_epoch=ring_epoch)
                    else:
                        await self._storage.put_manifests(address, [m for m, _, _ in batch], timeout=self.timeout,
                                                          ring_epoch=ring_epoch)
                except Exception as exc:  # noqa: BLE001 - handed to every caller whose manifest it carried
                    error = exc
                for _, done, _ in batch:
                    if not done.done():
                        if error is None:
                            done.set_result(None)
                        else:
                            done.set_exception(error)
        finally:
            self._busy.discard(lane)
            # Only when this task itself was cancelled (shutdown): the call in flight and
            # those waiting are abandoned, and their callers count the node as failed
            # (rather than wait for an answer that will never come).
            abandoned = ServiceUnavailable(f"manifest write to {address} abandoned")
            for _, done, _ in batch + self._waiting.pop(lane, []):
                if not done.done():
                    done.set_exception(abandoned)

    def _expire(self, address: str, waiting: list[Waiting]) -> None:
        """Fail, without sending them, the manifests at the head of ``waiting`` that came
        more than ``timeout`` ago (they came in order, so those are a prefix)."""
        late = self._clock() - self.timeout
        n = 0
        while n < len(waiting) and waiting[n][2] < late:
            n += 1
        if not n:
            return
        expired, waiting[:] = waiting[:n], waiting[n:]
        error = ServiceUnavailable(f"manifest write to {address} waited over {self.timeout:g}s for its call")
        for _, done, _ in expired:
            if not done.done():
                done.set_exception(error)
