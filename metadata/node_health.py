"""Storage-node liveness on the metadata nodes: heartbeats in, state changes out through
Raft, the health table, and the long poll on the cluster-map epoch.

Routes (signed, leader only: other members answer 503 NotLeader naming the leader):

    POST /v1/nodes/heartbeat  {"node": NodeInfo, "stats": {...}}  -> {"epoch", "state"}
    GET  /v1/nodes/health                                      -> {"epoch", "nodes": [...]}

and, through :func:`wait_query` and :class:`EpochWatch`, ``GET /v1/cluster?wait_epoch=E
&timeout=S`` (:mod:`metadata.app`): answered at once when the epoch exceeds E, else as
soon as it does, or after S seconds with the unchanged map.

Invariants: heartbeats change only the leader's soft state (:class:`LivenessMonitor`),
except the first one of a node the map does not have (or whose address, zone or weight
changed), which registers it through Raft; its state in the map is kept then (a draining
node stays draining). Every state change the monitor decides is proposed as
``SetNodeState(node, to, if_state=from)``, so it never overwrites a change made
meanwhile (an operator's drain, another leader's decision). Only the leader proposes;
each metadata node runs the loop and it acts only while its node leads. Waiting long
polls are bounded (``MAX_WAITERS``; more get 503 ServiceUnavailable).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from metadata.api import commands as c
from metadata.api.commands import check_types
from metadata.liveness import LivenessMonitor, LivenessSettings, Transition, heartbeat_interval
from metadata.replication.replicator import Replicator
from objstore.errors import InvalidArgument, NotLeader, ServiceUnavailable
from objstore.types import NodeInfo

log = logging.getLogger(__name__)

MAX_HEARTBEAT_BYTES = 64 * 1024
MAX_WAIT_SECONDS = 60.0
DEFAULT_WAIT_SECONDS = 30.0
MAX_WAITERS = 1024
EPOCH_POLL_SECONDS = 0.05


def registration(known: NodeInfo | None, sent: NodeInfo, auto_add: bool = False) -> NodeInfo | None:
    """The node record a heartbeat (or ``POST /v1/nodes``) must register through Raft, or
    None when the map already has it: a new node joins ``up``, or ``joining`` when it asks
    to (started with ``--join``) unless ``auto_add``; a known one whose address or zone
    changed keeps its state and weight in the map (the weight is the operator's, set with
    ``objstore node set-weight``). Capacity alone never causes a Raft write."""
    if known is None:
        return dataclasses.replace(sent, state="joining" if sent.state == "joining" and not auto_add else "up")
    if (known.address, known.zone) == (sent.address, sent.zone):
        return None
    return dataclasses.replace(sent, state=known.state, weight=known.weight)


class LivenessService:
    """The asyncio side of :class:`LivenessMonitor` on one metadata node."""

    def __init__(self, replicator: Callable[[], Replicator], settings: LivenessSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rep = replicator
        self.monitor = LivenessMonitor(settings)
        self.clock = clock
        self.interval = heartbeat_interval(settings.node_timeout)
        self._leading = False
        self.auto_add = False  # storage nodes asking to join enter the ring at once

    def leading(self) -> bool:
        """Whether this node leads; on becoming leader, the monitor starts afresh."""
        now_leading = self._rep().is_leader()
        if now_leading and not self._leading:
            self.monitor.elected(self.clock())
        self._leading = now_leading
        return now_leading

    async def heartbeat(self, node: NodeInfo, stats: dict[str, Any]) -> dict[str, Any]:
        """Handle one heartbeat at the leader; raises NotLeader elsewhere."""
        rep = self._rep()
        if not self.leading():
            raise rep.not_leader()
        cmap = await rep.read(lambda f: f.cluster_map())
        record = registration(cmap.node(node.node_id), node, self.auto_add)
        if record is not None:
            cmap = (await rep.propose(c.RegisterNode(record))).result(c.RegisterNode)
            log.info("storage node %s registered by its heartbeat (%s)", node.node_id, node.address)
        self.monitor.heartbeat(node.node_id, stats, self.clock())
        mine = cmap.node(node.node_id)
        return {"epoch": cmap.epoch, "state": mine.state if mine else ""}

    async def health(self) -> dict[str, Any]:
        rep = self._rep()
        cmap = await rep.read(lambda f: f.cluster_map())  # NotLeader on a follower
        self.leading()
        return {"epoch": cmap.epoch, "nodes": self.monitor.health(cmap, self.clock())}

    async def step(self) -> list[Transition]:
        """One round at the leader: propose every transition the monitor decides."""
        if not self.leading():
            return []
        rep = self._rep()
        cmap = await rep.read(lambda f: f.cluster_map())
        done = []
        for t in self.monitor.transitions(cmap, self.clock()):
            await rep.propose(c.SetNodeState(t.node_id, t.to_state, if_state=t.from_state))
            log.warning("storage node %s: %s -> %s (%s)", t.node_id, t.from_state, t.to_state, t.reason)
            done.append(t)
        return done

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except (NotLeader, ServiceUnavailable) as exc:
                log.debug("liveness round skipped: %s", exc)
            except Exception:  # noqa: BLE001 - the loop must outlive any one round
                log.exception("liveness round failed")
            await asyncio.sleep(self.interval)


class EpochWatch:
    """Wakes waiting long polls when the local cluster-map epoch changes (polled every
    ``EPOCH_POLL_SECONDS`` by one task, however many polls wait). A stopping node closes
    it (:meth:`close`): the polls still waiting answer at once, with the map they have,
    rather than hold the node's shutdown for its whole grace (a gateway stopped first
    leaves its long poll behind)."""

    def __init__(self, epoch: Callable[[], int], max_waiters: int = MAX_WAITERS) -> None:
        self._epoch = epoch
        self._changed = asyncio.Event()
        self._closed = False
        self.max_waiters = max_waiters
        self.waiting = 0

    def close(self) -> None:
        """End every wait now (each returns False), and every later one at once."""
        self._closed = True
        self._changed.set()

    async def run(self) -> None:
        last = self._epoch()
        while True:
            await asyncio.sleep(EPOCH_POLL_SECONDS)
            now = self._epoch()
            if now != last:
                last = now
                self._changed.set()
                self._changed = asyncio.Event()

    async def wait_above(self, epoch: int, timeout: float) -> bool:
        """Wait until the local epoch exceeds ``epoch`` (True) or ``timeout`` passes (False).
        Raises ServiceUnavailable when ``max_waiters`` polls already wait."""
        if self.waiting >= self.max_waiters:
            raise ServiceUnavailable("too many cluster-map long polls waiting; retry later")
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        self.waiting += 1
        try:
            while self._epoch() <= epoch:
                if self._closed:
                    return False
                changed = self._changed
                remaining = end - loop.time()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except asyncio.TimeoutError:
                    return False
            return True
        finally:
            self.waiting -= 1


def wait_query(query: Any) -> tuple[int, float] | None:
    """``(wait_epoch, timeout)`` of a long poll's query, None for a plain request; raises
    InvalidArgument for malformed values (timeout capped at ``MAX_WAIT_SECONDS``)."""
    raw = query.get("wait_epoch")
    if raw is None:
        return None
    try:
        epoch = int(raw)
        timeout = float(query.get("timeout", DEFAULT_WAIT_SECONDS))
    except ValueError:
        raise InvalidArgument("wait_epoch must be an integer and timeout a number of seconds") from None
    if epoch < 0 or not timeout >= 0:
        raise InvalidArgument("wait_epoch and timeout must not be negative")
    return epoch, min(timeout, MAX_WAIT_SECONDS)


def node_from_body(body: Any) -> NodeInfo:
    """The node of a registration or heartbeat body ``{"node": {...}, ...}``; raises InvalidArgument."""
    if not isinstance(body, dict) or not isinstance(body.get("node"), dict):
        raise InvalidArgument('expected {"node": {...}}')
    try:
        node = NodeInfo.from_dict(body["node"])
    except (TypeError, KeyError) as exc:
        raise InvalidArgument(f"malformed node: {exc}") from None
    check_types(node)
    return node


LIVENESS = web.AppKey("liveness", LivenessService)
EPOCH_WATCH = web.AppKey("epoch_watch", EpochWatch)


async def _post_heartbeat(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_HEARTBEAT_BYTES:
        raise InvalidArgument(f"a heartbeat is at most {MAX_HEARTBEAT_BYTES} bytes")
    try:
        body = await request.json()
    except ValueError as exc:
        raise InvalidArgument(f"request body is not JSON: {exc}") from None
    node = node_from_body(body)
    stats = body.get("stats", {})
    if not isinstance(stats, dict):
        raise InvalidArgument('expected {"node": {...}, "stats": {...}}')
    return web.json_response(await request.app[LIVENESS].heartbeat(node, stats))


async def _get_health(request: web.Request) -> web.Response:
    return web.json_response(await request.app[LIVENESS].health())


def add_liveness(app: web.Application, replicator: Callable[[], Replicator], settings: LivenessSettings) -> None:
    """Add the routes and the background tasks (after the context that opens the replicator)."""
    service = LivenessService(replicator, settings)
    watch = EpochWatch(lambda: replicator().fsm.epoch)  # type: ignore[attr-defined]
    app[LIVENESS] = service
    app[EPOCH_WATCH] = watch

    async def tasks_ctx(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(service.run(), name="liveness"),
                 asyncio.create_task(watch.run(), name="epoch-watch")]
        yield
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def end_long_polls(app: web.Application) -> None:
        watch.close()

    app.cleanup_ctx.append(tasks_ctx)
    app.on_shutdown.append(end_long_polls)  # before the server waits for requests in flight
    app.router.add_post("/v1/nodes/heartbeat", _post_heartbeat, name="node_heartbeat")
    app.router.add_get("/v1/nodes/health", _get_health, name="node_health")
