"""The gateway's view of the cluster: the cluster map, its ring, and nodes it suspects.

The map is fetched from the metadata service and refreshed in the background; a node that
fails a request is *suspected* for a short while, so new writes are placed on the next
nodes of the ring (handoff) instead of waiting on a dead one. Suspicion is local, soft
state: it never changes the cluster map. A node that answered 507 (full) is suspected
for longer (``FanOut`` asks for it), and ``handoff`` finds a replacement for a full node
in the middle of a write.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Awaitable, Callable, Collection

from objstore.errors import InsufficientReplicas
from objstore.ring import Ring, build_ring
from objstore.types import ClusterMap, NodeInfo

log = logging.getLogger(__name__)

SUSPECT_SECONDS = 5.0
REFRESH_SECONDS = 2.0


class Topology:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[ClusterMap]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self.map: ClusterMap = ClusterMap(0, ())
        self.ring: Ring = build_ring(self.map)
        self._suspects: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    async def refresh(self) -> None:
        cmap = await self._fetch()
        if cmap.epoch != self.map.epoch or len(cmap.nodes) != len(self.map.nodes):
            self.map = cmap
            self.ring = build_ring(cmap)

    async def start(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - the loop below keeps trying
            log.warning("initial cluster map fetch failed: %s", exc)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task  # the loop itself never raises: it logs failed refreshes

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001
                log.debug("cluster map refresh failed: %s", exc)

    def suspect(self, node_id: str, seconds: float = SUSPECT_SECONDS) -> None:
        self._suspects[node_id] = max(self._suspects.get(node_id, 0.0), self._clock() + seconds)

    def is_suspect(self, node_id: str) -> bool:
        until = self._suspects.get(node_id)
        if until is None:
            return False
        if until < self._clock():
            del self._suspects[node_id]
            return False
        return True

    def node(self, node_id: str) -> NodeInfo | None:
        return self.map.node(node_id)

    async def place(self, bucket: str, key: str, n: int) -> list[NodeInfo]:
        """The n nodes to write a new blob to: the ring's choice, suspects swapped for handoffs."""
        if not self.ring.nodes:
            await self.refresh()
        ids = self.ring.locate(bucket, key, n)
        healthy = [i for i in ids if not self.is_suspect(i)]
        if len(healthy) < n:
            suspects = {nd.node_id for nd in self.map.nodes if self.is_suspect(nd.node_id)}
            healthy += self.ring.locate_extra(bucket, key, n, suspects, limit=n - len(healthy))
        nodes = [nd for nd in (self.map.node(i) for i in healthy) if nd is not None]
        if not nodes:
            raise InsufficientReplicas("No storage node is available.")
        return nodes

    def handoff(self, bucket: str, key: str, n: int, exclude: Collection[str]) -> NodeInfo | None:
        """The next node of the ring for (bucket, key) after its first ``n``, not in
        ``exclude`` nor suspected; None if there is none."""
        suspects = {nd.node_id for nd in self.map.nodes if self.is_suspect(nd.node_id)}
        for node_id in self.ring.locate_extra(bucket, key, n, {*exclude, *suspects}):
            node = self.map.node(node_id)
            if node is not None:
                return node
        return None
