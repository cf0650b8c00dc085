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
idle lane holds nothing. Time is bounded as for a single write: a caller is answered
within ``timeout`` (2 s) of coming, however deep the queue and whatever the call ahead of
it does: manifests wait only behind a call that has run less than ``stall`` (1 s); behind
one that has run longer (a node that takes connections but never answers, or answers
slowly) they go in a call of their own, given what is left of their ``timeout`` (on such a
node a caller would otherwise wait for every call ahead of it, and hold up hand-over
passes waiting for its write, :mod:`gateway.ring_epochs`). The calls run as background tasks, so a caller that is cancelled does not cancel the
call that carries the other callers' manifests. The lanes are :class:`objstore.coalescing.Lanes`.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Coroutine

from objstore.coalescing import GATHER_TICKS, Lanes
from objstore.manifest import CommitManifest
from objstore.node.client import StorageClient

MAX_BATCH = 256  # manifests in one batch call (the node takes up to 4096)
MAX_WAITING = 4096  # manifests waiting for one node; more are sent alone
Lane = tuple[str, int]  # a node's address and the ring epoch its manifests were placed by


class ManifestLanes(Lanes[Lane, CommitManifest, None]):
    """``spawn`` runs a coroutine in the background (the gateway's ``background``);
    ``clock`` tells the time waiting is measured by (monotonic seconds)."""

    def __init__(self, storage: StorageClient, spawn: Callable[[Coroutine[Any, Any, Any]], None], *,
                 max_batch: int = MAX_BATCH, max_waiting: int = MAX_WAITING, timeout: float = 2.0,
                 stall: float | None = None, clock: Callable[[], float] = time.monotonic,
                 gather_ticks: int = GATHER_TICKS) -> None:
        super().__init__(self._put_one, self._put_many, spawn, max_batch=max_batch, max_waiting=max_waiting,
                         timeout=timeout, stall=stall, clock=clock,
                         describe=lambda lane: f"manifest write to {lane[0]}", gather_ticks=gather_ticks)
        self._storage = storage

    async def put(self, address: str, manifest: CommitManifest, ring_epoch: int = 0) -> None:
        """Store ``manifest``, placed by the ring of ``ring_epoch``, durably on the node at
        ``address``; raises what the call raised."""
        await self.submit((address, ring_epoch), manifest)

    def send(self, address: str, manifest: CommitManifest, ring_epoch: int = 0) -> "asyncio.Future[None]":
        """:meth:`put` as a future (no coroutine or task of its own while the manifest
        waits in its lane)."""
        return self.enqueue((address, ring_epoch), manifest)

    async def _put_one(self, lane: Lane, manifest: CommitManifest, timeout: float) -> None:
        await self._storage.put_manifest(lane[0], manifest, timeout=timeout, ring_epoch=lane[1])

    async def _put_many(self, lane: Lane, manifests: list[CommitManifest], timeout: float) -> list[None]:
        await self._storage.put_manifests(lane[0], manifests, timeout=timeout, ring_epoch=lane[1])
        return [None] * len(manifests)
