"""Which storage nodes are alive: the leader's pure liveness monitor.

The metadata leader feeds it every heartbeat (``heartbeat``) and asks it, from time to
time, which state changes the cluster map needs (``transitions``); the asyncio part
(:mod:`metadata.node_health`) proposes each as ``SetNodeState(node, to, if_state=from)``
through Raft. Time is whatever ``now`` the caller passes (seconds, monotonic).

Transitions (``T`` = node timeout, ``D`` = down-after; "alive" = a heartbeat received by
this leader less than ``T`` ago):

    up   -> down   no heartbeat for T
    full -> down   no heartbeat for T
    up   -> full   alive, capacity known and free_bytes < FULL_AT x reserve
    full -> up     alive and free_bytes > FULL_HYSTERESIS x reserve
    down -> up     alive (-> full instead when its free space is below FULL_AT x reserve)
    down -> out    down for D (as seen by this leader)
    out  -> up     alive (-> full instead when its free space is below FULL_AT x reserve)

The reserve is the node's own ``reserve_bytes`` when its stats carry one, else
min(5% of capacity, 1 GiB). Why FULL_AT is above 1: the node itself admits a blob only
if it leaves the reserve free, so writes alone never take its free space below the
reserve; it stops getting placements while it still has one reserve's worth above it (at
a 5% reserve: full at 90% used, up again below 85%, as Ceph's backfillfull and nearfull
ratios), before writes start failing over. Nodes in any other state (joining, draining, removed) are
never touched.

Invariants: the monitor's memory is soft state of one leadership term. ``elected(now)``
forgets everything, and silence is counted from the election for a node this leader
has not heard from yet, so a new leader gives every node a full node timeout (and every
down node a full down-after) before judging it. Its tables hold only nodes of the
cluster map (at most ``max_nodes``), so they stay bounded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from objstore.space import FULL_AT, FULL_HYSTERESIS, default_reserve
from objstore.types import ClusterMap

GIB = 1024**3
WATCHED_STATES = ("up", "full", "down", "out")
STAT_FIELDS = ("capacity_bytes", "used_bytes", "free_bytes", "blob_count")


@dataclass(frozen=True, slots=True)
class LivenessSettings:
    node_timeout: float = 10.0
    down_after: float = 600.0


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change the cluster map needs: ``node_id`` from ``from_state`` to ``to_state``."""

    node_id: str
    from_state: str
    to_state: str
    reason: str


def heartbeat_interval(node_timeout: float) -> float:
    """A heartbeat (and monitor round) interval giving a node at least four heartbeats per
    node timeout: 1 s, or less for short timeouts."""
    return min(1.0, node_timeout / 4)


def reserve_bytes(stats: dict[str, Any]) -> int | None:
    """The free space a node keeps in reserve, or None while its capacity is unknown."""
    reserve = stats.get("reserve_bytes")
    if _number(reserve):
        return int(reserve)
    capacity = stats.get("capacity_bytes")
    if not _number(capacity) or capacity <= 0:
        return None
    return default_reserve(capacity)


def space_state(stats: dict[str, Any], current: str) -> str:
    """``full`` or ``up`` for a live node in ``current`` state whose heartbeat said ``stats``:
    full below ``FULL_AT`` reserves, up again above ``FULL_HYSTERESIS`` reserves, else unchanged
    (``up`` when ``current`` is neither)."""
    reserve = reserve_bytes(stats)
    free = stats.get("free_bytes")
    was = current if current in ("up", "full") else "up"
    if reserve is None or not _number(free):
        return was
    if free < FULL_AT * reserve:
        return "full"
    if was == "full" and free <= FULL_HYSTERESIS * reserve:
        return "full"
    return "up"


def _number(v: Any) -> bool:
    """Whether ``v`` is a usable figure: a finite int or float (JSON bodies may carry
    Infinity and NaN, which ``int()`` cannot take)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class LivenessMonitor:
    """Heartbeat times and stats of the storage nodes, and the transitions they imply."""

    def __init__(self, settings: LivenessSettings = LivenessSettings(), max_nodes: int = 10_000) -> None:
        self.settings = settings
        self.max_nodes = max_nodes
        self._elected_at = 0.0
        self._last: dict[str, float] = {}  # node id -> time of its last heartbeat
        self._stats: dict[str, dict[str, Any]] = {}  # node id -> stats of its last heartbeat
        self._entered: dict[str, tuple[str, float]] = {}  # node id -> (state, when first seen in it)

    def elected(self, now: float) -> None:
        """This node became leader at ``now``: forget what an earlier term knew."""
        self._elected_at = now
        self._last.clear()
        self._stats.clear()
        self._entered.clear()

    def heartbeat(self, node_id: str, stats: dict[str, Any], now: float) -> bool:
        """Record a heartbeat of ``node_id``; False (ignored) when the table is full."""
        if node_id not in self._last and len(self._last) >= self.max_nodes:
            return False
        self._last[node_id] = now
        self._stats[node_id] = stats
        return True

    def alive(self, node_id: str, now: float) -> bool:
        last = self._last.get(node_id)
        return last is not None and now - last < self.settings.node_timeout

    def transitions(self, cmap: ClusterMap, now: float) -> list[Transition]:
        """The state changes ``cmap`` needs at ``now`` (at most one per node)."""
        self._forget_missing(cmap)
        out: list[Transition] = []
        for node in cmap.nodes:
            state = node.state
            seen = self._entered.get(node.node_id)
            if seen is None or seen[0] != state:
                self._entered[node.node_id] = seen = (state, now)
            if state not in WATCHED_STATES:
                continue
            to, reason = self._next(node.node_id, state, now - seen[1], now)
            if to != state:
                out.append(Transition(node.node_id, state, to, reason))
        return out

    def _next(self, node_id: str, state: str, in_state: float, now: float) -> tuple[str, str]:
        s = self.settings
        alive = self.alive(node_id, now)
        stats = self._stats.get(node_id, {})
        if state in ("up", "full"):
            if not alive:
                silent_since = self._last.get(node_id, self._elected_at)
                if now - silent_since >= s.node_timeout:
                    return "down", f"no heartbeat for {now - silent_since:.1f}s"
                return state, ""
            to = space_state(stats, state)
            return to, f"free {stats.get('free_bytes')} bytes, reserve {reserve_bytes(stats)}"
        # Back up only on a heartbeat sent after the node was seen in this state: one sent
        # just before an operator (or this monitor) marked it down or out does not count.
        if alive and self._last.get(node_id, now) >= now - in_state:
            return space_state(stats, "up"), "heartbeating again"
        if state == "down" and in_state >= s.down_after:
            return "out", f"down for {in_state:.1f}s"
        return state, ""

    def _forget_missing(self, cmap: ClusterMap) -> None:
        ids = {n.node_id for n in cmap.nodes}
        for table in (self._last, self._stats, self._entered):
            for gone in [k for k in table if k not in ids]:
                del table[gone]

    def heartbeat_ages(self, now: float) -> dict[str, float]:
        """Seconds since each node's last heartbeat (nodes heard from since this election)."""
        return {node_id: now - last for node_id, last in self._last.items()}

    def free_bytes(self) -> dict[str, int]:
        """Each node's free space above its reserve, from its last heartbeat (nodes whose
        heartbeats carry no space figures are left out: unknown, not full)."""
        free = {}
        for node_id, stats in self._stats.items():
            if isinstance(stats.get("free_bytes"), int):
                free[node_id] = max(stats["free_bytes"] - (reserve_bytes(stats) or 0), 0)
        return free

    def used_bytes(self) -> dict[str, int]:
        """Each node's used bytes from its last heartbeat (nodes that sent none left out)."""
        return {n: s["used_bytes"] for n, s in self._stats.items() if isinstance(s.get("used_bytes"), int)}

    def health(self, cmap: ClusterMap, now: float) -> list[dict[str, Any]]:
        """Per node of ``cmap``: its state, the age of its last heartbeat (None: none since
        this leader was elected), the stats of that heartbeat and its scrub progress."""
        rows = []
        for node in cmap.nodes:
            last = self._last.get(node.node_id)
            stats = self._stats.get(node.node_id, {})
            rows.append({
                "node_id": node.node_id, "state": node.state,
                "heartbeat_age": None if last is None else round(now - last, 3),
                **{k: stats.get(k) for k in STAT_FIELDS},
                "scrub": stats.get("scrub"),
            })
        return rows
