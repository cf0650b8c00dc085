"""Signed calls from a storage node to the metadata leader, retried until accepted; and
registration, the first such call.

``POST http://{meta}{path}`` (https, verified against ``cfg.tls_ca``, when that is given)
with a JSON body, signed with the cluster secret. The addresses in ``cfg.metadata`` are
tried in turn, starting with a preferred one (the leader that accepted last); a 503
``NotLeader`` whose ``extra.leader`` names another ``host:port`` is followed next. Any 2xx
means the call was accepted. Failures back off exponentially (with jitter) up to
``max_delay``. Registration is ``POST /v1/nodes`` with ``{"node": NodeInfo(...).to_dict()}``;
heartbeats (:mod:`objstore.node.heartbeat`) use the same loop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from typing import Awaitable, Callable

import aiohttp

from objstore import internal_auth
from objstore.config import StorageConfig
from objstore.tls import base_url, client_context, request_ssl
from objstore.types import NodeInfo

log = logging.getLogger(__name__)

NODES_PATH = "/v1/nodes"


def node_info(cfg: StorageConfig, capacity_bytes: int) -> NodeInfo:
    return NodeInfo(
        node_id=cfg.node_id,
        address=cfg.advertise or f"{cfg.host}:{cfg.port}",
        zone=cfg.zone,
        weight=cfg.weight,
        state="up",
        capacity_bytes=capacity_bytes,
    )


async def post_once(session: aiohttp.ClientSession, address: str, secret: str, path: str, payload: dict,
                    tls: ssl.SSLContext | None = None) -> str | None:
    """Try one metadata node. Returns None when accepted, else the leader it named ("" if none).

    Raises aiohttp.ClientError / OSError / asyncio.TimeoutError on connection problems.
    """
    data = json.dumps(payload).encode()
    hdrs = {**internal_auth.headers(secret, "POST", path, body=data, target=address), "Content-Type": "application/json"}
    async with session.post(base_url(address, tls) + path, data=data, headers=hdrs,
                            ssl=request_ssl(tls)) as resp:
        body = await resp.read()
        if 200 <= resp.status < 300:
            return None
        leader = ""
        try:
            d = json.loads(body)
            if d.get("code") == "NotLeader":
                leader = str((d.get("extra") or {}).get("leader") or "")
        except (ValueError, AttributeError):
            pass
        if not leader:
            log.info("%s at %s refused: HTTP %d %s", path, address, resp.status, body[:200])
        return leader


async def post_until_accepted(
    cfg: StorageConfig,
    path: str,
    payload: Callable[[], dict],
    session: aiohttp.ClientSession,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
    prefer: str = "",
) -> str:
    """POST ``payload()`` (built afresh for each attempt) to ``path`` on the metadata leader,
    retrying forever, first at ``prefer`` when given; returns the address that accepted."""
    rng = rng or random.Random()
    delay = base_delay
    i = 0
    hint = prefer
    hops = 0  # leader hints followed without a pause, bounded so two nodes cannot ping-pong
    tls = client_context(cfg.tls_ca)
    while True:
        address = hint or cfg.metadata[i % len(cfg.metadata)]
        if not hint:
            i += 1
        hint = ""
        try:
            leader = await post_once(session, address, cfg.secret, path, payload(), tls)
            if leader is None:
                return address
            if leader and leader != address:
                hint = leader
                hops += 1
                if hops <= 3:
                    continue  # follow the leader at once
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.info("metadata at %s unreachable: %r", address, exc)
        hops = 0
        await sleep(delay * (0.5 + rng.random()))
        delay = min(delay * 2, max_delay)


async def register_until_accepted(
    cfg: StorageConfig,
    capacity: Callable[[], int],
    session: aiohttp.ClientSession,
    rng: random.Random | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    base_delay: float = 0.2,
    max_delay: float = 5.0,
) -> str:
    """Register (``POST /v1/nodes``), retrying forever; returns the metadata address that accepted."""
    address = await post_until_accepted(cfg, NODES_PATH, lambda: {"node": node_info(cfg, capacity()).to_dict()},
                                        session, rng, sleep, base_delay, max_delay)
    log.info("node %s registered with metadata at %s", cfg.node_id, address)
    return address
