"""Reporting damaged blobs to the metadata service, which schedules their repair.

``POST /v1/repair/report`` (signed with the cluster secret, sent to the metadata leader:
NotLeader hints are followed as registration follows them,
:func:`objstore.node.register.post_following_leader`) with
``{"reports": [{"bucket", "key", "version_id", "part", "shard", "node_id", "reason"}]}``.

What a node knows of a damaged blob comes from its record header (bucket, key, version id,
shard, policy). A multipart part's blob is written under the part's own version id and its
header does not carry the part number, so a node sends ``part`` 0 and the metadata side
resolves the part by version id. ``shard`` is the header's shard for an erasure-coded blob;
every replica of a ``replica:N`` blob is shard 0 on disk, so a replica is sent as ``-1``
(unknown index: the metadata side finds it by ``node_id`` in the placement).

Invariants: best effort and bounded. :class:`ReportQueue` holds at most ``limit`` reports
(more are dropped and counted), sends them in batches of at most ``batch``, retries a
failed batch with exponential backoff (with jitter, capped) up to ``attempts`` times, then
drops it (counted). Nothing here blocks a read or the scrubber.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
from typing import Awaitable, Callable, Sequence

import aiohttp

from objstore.erasure.data_layout import DataLayout
from objstore.errors import InvalidArgument, ServiceUnavailable
from objstore.node.blob import BlobHeader
from objstore.node.register import post_following_leader

log = logging.getLogger(__name__)

REPORT_PATH = "/v1/repair/report"
REASONS = ("missing", "corrupt")


def damage_report(header: BlobHeader, node_id: str, reason: str = "corrupt") -> dict:
    """The report of one damaged blob, from its record header (see the module docstring)."""
    if reason not in REASONS:
        raise InvalidArgument(f"invalid damage reason {reason!r}")
    try:
        coded = DataLayout.parse(header.policy).erasure_coded
    except InvalidArgument:
        coded = False
    return {"bucket": header.bucket, "key": header.key, "version_id": header.version_id, "part": 0,
            "shard": header.shard if coded else -1, "node_id": node_id, "reason": reason}


async def report(session: aiohttp.ClientSession, metadata_addrs: Sequence[str], secret: str,
                 tls: ssl.SSLContext | None, reports: list[dict]) -> None:
    """Send ``reports`` to the metadata leader: each address is tried in turn, following
    its NotLeader hint. Raises ServiceUnavailable when none accepted them."""
    if not reports:
        return
    for address in metadata_addrs:
        if await post_following_leader(session, address, REPORT_PATH, {"reports": reports}, secret, tls):
            return
    raise ServiceUnavailable(f"no metadata node at {', '.join(metadata_addrs) or '(none)'} accepted the repair report")


Sender = Callable[[list[dict]], Awaitable[None]]


class ReportQueue:
    """A bounded queue of damage reports and the task that sends them (see invariants)."""

    def __init__(self, send: Sender, limit: int = 1000, batch: int = 100, attempts: int = 8,
                 base_delay: float = 0.5, max_delay: float = 30.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, rng: random.Random | None = None) -> None:
        self._send = send
        self._queue: collections.deque[dict] = collections.deque()
        self.limit, self.batch, self.attempts = limit, batch, attempts
        self._base_delay, self._max_delay = base_delay, max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._ready = asyncio.Event()
        self.sent = 0  # reports accepted by the metadata service
        self.failed_attempts = 0
        self.dropped = 0  # reports given up on: queue full, or every attempt failed

    def add(self, item: dict) -> bool:
        """Queue one report; False (dropped) when the queue is full."""
        if len(self._queue) >= self.limit:
            self.dropped += 1
            return False
        self._queue.append(item)
        self._ready.set()
        return True

    def status(self) -> dict:
        return {"queued": len(self._queue), "sent": self.sent, "failed_attempts": self.failed_attempts,
                "dropped": self.dropped}

    async def send_batch(self) -> bool:
        """Send the oldest batch, retrying with backoff; True if accepted, False if dropped."""
        batch = [self._queue[i] for i in range(min(self.batch, len(self._queue)))]
        delay = self._base_delay
        for attempt in range(self.attempts):
            try:
                await self._send(batch)
            except Exception as exc:  # noqa: BLE001 - best effort: any failure is retried, then dropped
                self.failed_attempts += 1
                log.warning("repair report of %d blobs failed (attempt %d of %d): %s", len(batch), attempt + 1,
                            self.attempts, exc)
                if attempt + 1 < self.attempts:
                    await self._sleep(delay * (0.5 + self._rng.random()))
                    delay = min(delay * 2, self._max_delay)
                continue
            self._pop(len(batch))
            self.sent += len(batch)
            log.info("reported %d damaged blobs for repair", len(batch))
            return True
        self._pop(len(batch))
        self.dropped += len(batch)
        return False

    def _pop(self, n: int) -> None:
        for _ in range(n):
            self._queue.popleft()

    async def run(self) -> None:
        """Send batches as reports arrive, until cancelled."""
        while True:
            await self._ready.wait()
            while self._queue:
                await self.send_batch()
            self._ready.clear()


def metadata_sender(session: aiohttp.ClientSession, metadata_addrs: Sequence[str], secret: str,
                    tls: ssl.SSLContext | None) -> Sender:
    """A :class:`ReportQueue` sender posting through :func:`report`."""
    async def send(reports: list[dict]) -> None:
        await report(session, metadata_addrs, secret, tls, reports)
    return send
