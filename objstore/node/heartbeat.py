"""Heartbeats: a storage node tells the metadata leader, every ``heartbeat_interval``
seconds, that it is alive and how full it is.

``POST /v1/nodes/heartbeat`` (signed; leader hints followed, as registration does:
:func:`objstore.node.register.post_until_accepted`) with
``{"node": NodeInfo.to_dict(), "stats": node_stats(app)}``. The leader registers an
unknown node (or one whose address, zone or weight changed) through Raft on its first
heartbeat, so heartbeats replace the one-off registration; later heartbeats only refresh
the leader's soft state (``metadata.liveness``), never a Raft write.

Invariants: at most one heartbeat is in flight; the next one starts ``heartbeat_interval``
after the previous one started (or at once when it took longer); each attempt carries
fresh stats. A metadata service that does not answer is retried with backoff capped at the
interval, so a node resumes heartbeating within one interval of the leader's return; until
its first heartbeat is accepted (the node is not in the cluster map yet: a node started with
or before its metadata group, as ``objstore up`` starts them all at once), the cap is
``FIRST_RETRY_CAP`` seconds at most, so it joins within about that of a leader being elected.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import aiohttp
from aiohttp import web

from objstore.config import StorageConfig
from objstore.node.register import node_info, post_until_accepted

HEARTBEAT_PATH = "/v1/nodes/heartbeat"
FIRST_RETRY_CAP = 0.25  # seconds between tries at most, until the first heartbeat is accepted


def node_stats(app: web.Application) -> dict[str, Any]:
    """What a heartbeat says about the node: ``capacity_bytes``, ``used_bytes``,
    ``free_bytes``, ``reserve_bytes`` (:meth:`objstore.node.store.BlobStore.space`),
    ``blob_count`` and ``scrub`` (the scrubber's progress, once it runs). Other parts extend
    it by adding keys."""
    from objstore.node.app import SCRUB, STORE  # the app imports this module: look the keys up at call time

    store = app[STORE]
    return {**store.space(), "blob_count": len(store.index),
            "scrub": app[SCRUB].status() if SCRUB in app else None}


def heartbeat_body(cfg: StorageConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of one heartbeat."""
    return {"node": node_info(cfg, int(stats.get("capacity_bytes", 0))).to_dict(), "stats": stats}


async def heartbeat_loop(cfg: StorageConfig, stats: Callable[[], dict[str, Any]], session: aiohttp.ClientSession,
                         clock: Callable[[], float] = time.monotonic) -> None:
    """Send heartbeats forever (until cancelled), to the leader that accepted the last one first."""
    interval = cfg.heartbeat_interval
    leader = ""
    while True:
        started = clock()
        cap = interval if leader else min(interval, FIRST_RETRY_CAP)
        leader = await post_until_accepted(cfg, HEARTBEAT_PATH, lambda: heartbeat_body(cfg, stats()), session,
                                           base_delay=min(0.2, cap), max_delay=cap, prefer=leader)
        await asyncio.sleep(max(0.0, interval - (clock() - started)))


async def heartbeat_task(cfg: StorageConfig, app: web.Application) -> None:
    """The background task the node runs: its own session, closed when cancelled."""
    timeout = aiohttp.ClientTimeout(total=max(5.0, 2 * cfg.heartbeat_interval), connect=3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await heartbeat_loop(cfg, lambda: node_stats(app), session)
