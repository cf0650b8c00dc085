"""The gateway's view of the cluster: the cluster map, its ring, and nodes it suspects.

The map is fetched from the metadata service at start, then kept current by one long poll
at a time (``wait(epoch, POLL_SECONDS)``: the leader answers as soon as the epoch moves
past ours), so a node marked down, full or up reaches the gateway within about a second;
failed polls back off up to ``MAX_BACKOFF``. A node that fails a request is *suspected*
for a short while. Suspicion is local, soft state: it never changes the cluster map.

New blobs go only to nodes in ``WRITABLE_STATES`` that are not suspected: the ring's
choice, each other node swapped in its slot for the next handoff (``locate_extra``), so
shard i of an erasure-coded blob stays on the ring's i-th node whenever that node can
take it. Reads try suspected nodes and nodes the map says are down, out or removed last.
A node that answered 507 (full) is suspected for longer (``FanOut`` asks for it), and
``handoff`` finds a replacement for a full node in the middle of a write.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Awaitable, Callable, Collection

from objstore.errors import InsufficientReplicas
from objstore.ring import Ring, build_ring
from objstore.types import WRITABLE_STATES, ClusterMap, NodeInfo

log = logging.getLogger(__name__)

SUSPECT_SECONDS = 5.0  # the default of --suspect-timeout
REFRESH_SECONDS = 2.0  # without a long poll: how often the map is fetched
POLL_SECONDS = 10.0  # how long the leader may hold one long poll
MAX_BACKOFF = 5.0
READ_LAST_STATES = ("down", "out", "removed")  # map states whose nodes reads try last
LOCATED = 1024  # placements remembered by :func:`locate`


_located: dict[tuple[Ring, str, str, int], tuple[str, ...]] = {}


def locate(ring: Ring, bucket: str, key: str, n: int) -> list[str]:
    """``ring.locate(bucket, key, n)``, remembered for the last ``LOCATED`` lookups: a PUT
    places its blob and then its commit manifest on the same key's first ring nodes, one
    ring walk. A ring never changes (a new map builds a new one), so what it gave stays true
    for as long as the entry, which holds the ring, is kept."""
    entry = (ring, bucket, key, n)
    ids = _located.get(entry)
    if ids is None:
        ids = _located[entry] = tuple(ring.locate(bucket, key, n))
        if len(_located) > LOCATED:
            del _located[next(iter(_located))]
    return list(ids)


class Topology:
    def __init__(
        self,
        fetch: Callable[[], Awaitable[ClusterMap]],
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[int, float], Awaitable[ClusterMap]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        suspect_seconds: float = SUSPECT_SECONDS,
    ) -> None:
        """``fetch`` gets the map; ``wait(epoch, seconds)`` long-polls for one newer than
        ``epoch`` (without it the map is fetched every ``REFRESH_SECONDS``); a node that
        failed is suspected for ``suspect_seconds`` unless the caller says otherwise."""
        self.suspect_seconds = suspect_seconds
        self._fetch = fetch
        self._wait = wait
        self._clock = clock
        self._sleep = sleep
        self.map: ClusterMap = ClusterMap(0, ())
        self.ring: Ring = build_ring(self.map)
        self._by_id: dict[str, NodeInfo] = {}
        self._suspects: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    def adopt(self, cmap: ClusterMap) -> None:
        """Use ``cmap`` (the ring is rebuilt only when the map changed)."""
        if cmap != self.map:
            self.map = cmap
            self.ring = build_ring(cmap)
            self._by_id = {n.node_id: n for n in cmap.nodes}

    async def refresh(self) -> None:
        self.adopt(await self._fetch())

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
        backoff = 0.0
        while True:
            try:
                await self.follow_once()
                backoff = 0.0
            except Exception as exc:  # noqa: BLE001
                backoff = min(max(2 * backoff, 0.2), MAX_BACKOFF)
                log.debug("cluster map refresh failed (next try in %.1fs): %s", backoff, exc)
                await self._sleep(backoff)

    async def follow_once(self) -> None:
        """One round of keeping the map current: a long poll (or a pause and a fetch).
        A poll answered early with nothing new is followed by a pause, so a leader that
        cannot hold polls is not asked in a tight loop."""
        if self._wait is None:
            await self._sleep(REFRESH_SECONDS)
            await self.refresh()
            return
        began, epoch = self._clock(), self.map.epoch
        self.adopt(await self._wait(epoch, POLL_SECONDS))
        if self.map.epoch == epoch and self._clock() - began < POLL_SECONDS / 2:
            await self._sleep(1.0)

    def suspect(self, node_id: str, seconds: float | None = None) -> None:
        """Suspect ``node_id`` for ``seconds`` (default: ``suspect_seconds``) from now."""
        until = self._clock() + (self.suspect_seconds if seconds is None else seconds)
        self._suspects[node_id] = max(self._suspects.get(node_id, 0.0), until)

    def is_suspect(self, node_id: str) -> bool:
        """Whether reads should try ``node_id`` last: it failed a request here recently, or
        the map says it is down, out or removed."""
        node = self._by_id.get(node_id)
        if node is not None and node.state in READ_LAST_STATES:
            return True
        until = self._suspects.get(node_id)
        if until is None:
            return False
        if until < self._clock():
            del self._suspects[node_id]
            return False
        return True

    def node(self, node_id: str) -> NodeInfo | None:
        return self._by_id.get(node_id)

    def writable(self, node: NodeInfo) -> bool:
        """Whether ``node`` may take a new blob: writable in the map and not suspected."""
        return node.state in WRITABLE_STATES and not self.is_suspect(node.node_id)

    async def place(self, bucket: str, key: str, n: int) -> list[NodeInfo]:
        """The n nodes to write a new blob to, in placement order: the ring's choice, each
        node that is not writable (down, full, suspected, ...) replaced in its slot by the
        next handoff; fewer than n when the ring has too few writable nodes."""
        if not self.ring.nodes:
            await self.refresh()
        ids = locate(self.ring, bucket, key, n)
        by_id = self._by_id
        if not all(i in by_id and self.writable(by_id[i]) for i in ids):
            avoid = {nd.node_id for nd in self.ring.nodes if not self.writable(nd)}
            handoffs = iter(self.ring.locate_extra(bucket, key, n, avoid, limit=len(avoid.intersection(ids))))
            ids = [i if i not in avoid else next(handoffs, "") for i in ids]
        nodes = [self._by_id[i] for i in ids if i in self._by_id]
        if not nodes:
            raise InsufficientReplicas(self._none_available())
        return nodes

    def _none_available(self) -> str:
        """Why no node can take a new blob, for the client's error message."""
        if self.ring.nodes and all(nd.state == "full" for nd in self.ring.nodes):
            return ("No storage node is available: every storage node is full "
                    "(its free space is below twice its reserve).")
        return "No storage node is available."

    def handoff(self, bucket: str, key: str, n: int, exclude: Collection[str]) -> NodeInfo | None:
        """The next node of the ring for (bucket, key) after its first ``n``, not in
        ``exclude`` nor suspected; None if there is none."""
        suspects = {nd.node_id for nd in self.map.nodes if self.is_suspect(nd.node_id)}
        for node_id in self.ring.locate_extra(bucket, key, n, {*exclude, *suspects}):
            node = self.map.node(node_id)
            if node is not None:
                return node
        return None
