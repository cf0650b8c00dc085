"""Commit-manifest writes to one storage node, coalesced while a write to it is in flight.

Every write, delete or tag change writes its commit manifest to the key's ring nodes
(:mod:`gateway.datapath.manifests`); under concurrency many such writes head for the same
node at once. Each node has one lane: a manifest that finds no write in flight to its node
goes at once, alone (``PUT /manifests``); those that come while one is in flight wait for
it and then go together in one ``PUT /manifests/batch`` (one request, one fsync on the
node). A node serves a call in ~0.4 ms of CPU whatever it carries, so at 64 concurrent
small PUTs (~3 manifest writes in flight per node) this saves most of those calls.

Invariants: a caller is answered only once the call carrying its manifest answered (the
node's answer means durable); a failed call fails every manifest it carried (each caller
counts its node as failed, as before). Lanes are bounded: at most ``max_waiting``
manifests wait per node (more go alone, at once), at most ``max_batch`` per call, and an
idle lane holds nothing. The calls run as background tasks, so a caller that is cancelled
does not cancel the call that carries the other callers' manifests.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Coroutine

from objstore.errors import ServiceUnavailable
from objstore.manifest import CommitManifest
from objstore.node.client import StorageClient

MAX_BATCH = 256  # manifests in one batch call (the node takes up to 4096)
MAX_WAITING = 4096  # manifests waiting for one node; more are sent alone
Lane = tuple[str, int]  # a node's address and the ring epoch its manifests were placed by


class ManifestLanes:
    """``spawn`` runs a coroutine in the background (the gateway's ``background``)."""

    def __init__(self, storage: StorageClient, spawn: Callable[[Coroutine[Any, Any, Any]], None], *,
                 max_batch: int = MAX_BATCH, max_waiting: int = MAX_WAITING, timeout: float = 2.0) -> None:
        self._storage = storage
        self._spawn = spawn
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.timeout = timeout
        self._waiting: dict[Lane, list[tuple[CommitManifest, asyncio.Future[None]]]] = {}
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
        waiting.append((manifest, done))
        if lane not in self._busy:
            self._busy.add(lane)
            self._spawn(self._drain(lane))
        await done

    async def _drain(self, lane: Lane) -> None:
        address, ring_epoch = lane
        batch: list[tuple[CommitManifest, asyncio.Future[None]]] = []
        try:
            while waiting := self._waiting.get(lane):
                batch, waiting[:] = waiting[:self.max_batch], waiting[self.max_batch:]
                error: BaseException | None = None
                self.calls += 1
                try:
                    if len(batch) == 1:
                        await self._storage.put_manifest(address, batch[0][0], timeout=self.timeout,
                                                         ring_epoch=ring_epoch)
                    else:
                        await self._storage.put_manifests(address, [m for m, _ in batch], timeout=self.timeout,
                                                          ring_epoch=ring_epoch)
                except Exception as exc:  # noqa: BLE001 - handed to every caller whose manifest it carried
                    error = exc
                for _, done in batch:
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
            for _, done in batch + self._waiting.pop(lane, []):
                if not done.done():
                    done.set_exception(abandoned)
