"""Signed calls from a storage node to the metadata leader, retried until accepted; and
registration, the first such call.

``POST http://{meta}{path}`` (https, verified against ``cfg.tls_ca``, when that is given)
with a JSON body, signed with the cluster secret. The addresses in ``cfg.metadata`` are
tried in turn, starting with a preferred one (the leader that accepted last); a 503
``NotLeader`` whose ``extra.leader`` names another ``host:port`` is followed next (at most
three hints in a row, so two nodes cannot ping-pong). Any 2xx means the call was accepted.
Failures back off exponentially (with jitter) up to ``max_delay``. Registration is
``POST /v1/nodes`` with ``{"node": NodeInfo(...).to_dict()}``; heartbeats
(:mod:`objstore.node.heartbeat`) use the same loop.

:func:`post_following_leader` is the one way a storage node posts to the metadata leader
(registration and heartbeats here, repair reports in :mod:`objstore.node.repair_report`).
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import os
import random
import ssl
from typing import Any, Awaitable, Callable, Sequence

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
        state="joining" if cfg.join else "up",
        capacity_bytes=capacity_bytes,
    )


async def post_signed(session: aiohttp.ClientSession, address: str, path: str, payload: dict, secret: str,
                      tls: ssl.SSLContext | None = None) -> str | None:
    """POST ``payload`` as JSON to one metadata node, signed with the cluster secret.

    Returns None when it answered 2xx, else the leader its NotLeader answer named ("" if
    none). Raises aiohttp.ClientError / OSError / asyncio.TimeoutError on connection problems.
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
            log.info("POST %s at %s refused: HTTP %d %s", path, address, resp.status, body[:200])
        return leader


async def post_following_leader(session: aiohttp.ClientSession, address: str, path: str, payload: dict,
                                secret: str, tls: ssl.SSLContext | None = None, max_hops: int = 3) -> str | None:
    """POST to ``address``, then to the leader each NotLeader answer names (at most
    ``max_hops`` hints, so two nodes cannot ping-pong). Returns the address that accepted,
    or None (refused, or a connection problem, which is logged)."""
    for _ in range(max_hops + 1):
        try:
            leader = await post_signed(session, address, path, payload, secret, tls)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.info("metadata at %s unreachable: %r", address, exc)
            return None
        if leader is None:
            return address
        if not leader or leader == address:
            return None
        address = leader
    return None


class LeaderError(Exception):
    """No metadata node answered a call (:func:`call_leader`)."""


class LeaderHint:
    """The metadata member that answered the last :func:`call_leader` given this hint: asked
    first by the next one (so a caller polling the leader does not go through a follower's
    NotLeader every time)."""

    def __init__(self) -> None:
        self.address = ""


async def call_leader(session: aiohttp.ClientSession, addresses: Sequence[str], secret: str,
                      tls: ssl.SSLContext | None, path: str, body: dict[str, Any],
                      hint: LeaderHint | None = None) -> Any:
    """POST ``body`` to the metadata leader (following NotLeader hints; the member that
    answered last first, with ``hint``); its JSON answer. Raises LeaderError when no node
    gives one."""
    data = json.dumps(body).encode()
    tried: list[str] = []
    first = hint.address if hint is not None else ""
    queue = ([first] if first else []) + [a for a in addresses if a != first]
    while queue and len(tried) < len(addresses) + 3:
        address = queue.pop(0)
        tried.append(address)
        hdrs = {**internal_auth.headers(secret, "POST", path, body=data, target=address),
                "Content-Type": "application/json"}
        try:
            async with session.post(base_url(address, tls) + path, data=data, headers=hdrs,
                                    ssl=request_ssl(tls)) as resp:
                raw = await resp.read()
                if 200 <= resp.status < 300:
                    answer = json.loads(raw)
                    if hint is not None:
                        hint.address = address
                    return answer
                err = json.loads(raw) if raw.startswith(b"{") else {}
                leader = str((err.get("extra") or {}).get("leader") or "")
                if err.get("code") == "NotLeader" and leader and leader not in tried:
                    queue.insert(0, leader)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError) as exc:
            log.debug("call %s to %s failed: %r", path, address, exc)
    raise LeaderError(f"no metadata leader answered {path} (tried {', '.join(tried)})")


_JITTER = random.Random()
os.register_at_fork(after_in_child=_JITTER.seed)  # nodes forked from one launcher must not beat in step


@functools.lru_cache(maxsize=4)
def _client_context(ca: str) -> ssl.SSLContext | None:
    """One client context per CA bundle for the node's life: a heartbeat every second
    built a new one before (reading the bundle each time), and since aiohttp pools
    connections per context, every beat opened a new connection (a full TLS handshake)."""
    return client_context(ca)


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
    rng = rng or _JITTER
    delay = base_delay
    tls = _client_context(cfg.tls_ca)
    for i in itertools.count():
        address = prefer if (prefer and i == 0) else cfg.metadata[i % len(cfg.metadata)]
        accepted = await post_following_leader(session, address, path, payload(), cfg.secret, tls)
        if accepted is not None:
            return accepted
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
