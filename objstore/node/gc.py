"""Garbage collection of orphan blobs on one storage node.

Every ``interval`` seconds the node takes the blobs it holds whose version id (an HLC
timestamp) is older than ``grace`` seconds on its own clock and which it wrote (``created``)
that long ago, and sends them in batches (bucket, key, version id, shard, created), naming
itself, to the metadata leader (``POST /v1/gc/check``, signed;
:mod:`metadata.gc_http`). It deletes (a tombstone; compaction reclaims the space) only
the blobs answered ``orphan``: referenced by no version record placing it on this node,
no part of a multipart version placing it here and no part of an upload in progress, and older than the metadata service's
``gc_floor``, below which every commit is refused. So no commit can ever reference a
collected blob, whatever the clocks say (the argument is in :mod:`metadata.gc_http`).

This collects the blobs of failed and ambiguous writes, of versions replaced or deleted
(the gateway no longer deletes them at once, so a GET streaming from them finishes), of
deletes missed while this node was down, and of aborted or expired multipart uploads.
Blobs whose version id is not an HLC timestamp are never collected.
"""
from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

import aiohttp

from objstore.errors import ServiceUnavailable
from objstore.hlc import is_version_id, version_time
from objstore.node.register import LeaderError, LeaderHint, call_leader
from objstore.node.store import BlobStore

log = logging.getLogger(__name__)

CHECK_PATH = "/v1/gc/check"
BATCH = 500
ORPHAN = "orphan"
Check = Callable[[list[list]], Awaitable[list[str]]]


@dataclass(slots=True)
class GcStats:
    passes: int = 0
    checked: int = 0
    collected_blobs: int = 0
    collected_bytes: int = 0


class GarbageCollector:
    """Collects this node's orphans through ``check`` (see the module docstring)."""

    def __init__(self, store: BlobStore, check: Check, grace: float, clock: Callable[[], float] = time.time,
                 batch: int = BATCH) -> None:
        self.store, self._check, self.grace, self._clock, self.batch = store, check, grace, clock, batch
        self.stats = GcStats()

    def candidates(self) -> list:
        """Index entries old enough to be checked."""
        cutoff = self._clock() - self.grace
        return [e for e in self.store.index.entries()
                if is_version_id(e.header.version_id) and version_time(e.header.version_id) < cutoff
                and e.header.created < cutoff]

    async def collect_once(self) -> int:
        """One pass; returns the number of blobs deleted."""
        entries = self.candidates()
        deleted = 0
        for i in range(0, len(entries), self.batch):
            batch = entries[i : i + self.batch]
            status = await self._check([[e.header.bucket, e.header.key, e.header.version_id, e.header.shard,
                                         e.header.created] for e in batch])
            self.stats.checked += len(batch)
            orphans = []
            for entry, st in zip(batch, status):
                live = self.store.index.get(entry.blob_id)
                if st == ORPHAN and live is not None and live.seq == entry.seq:  # else rewritten meanwhile
                    orphans.append(entry)
            # Concurrent deletes share group commits (one fsync for many tombstones).
            done = await asyncio.gather(*(self.store.delete(e.blob_id) for e in orphans))
            for entry, ok in zip(orphans, done):
                if ok:
                    deleted += 1
                    self.stats.collected_blobs += 1
                    self.stats.collected_bytes += entry.header.size
        self.stats.passes += 1
        return deleted

    async def run(self, interval: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                  rng: random.Random | None = None) -> None:
        """A pass every ``interval`` seconds (jittered, so nodes spread out) until cancelled."""
        rng = rng or random.Random()
        while True:
            await sleep(interval * (0.75 + rng.random() / 2))
            try:
                n = await self.collect_once()
                if n:
                    log.info("garbage collection deleted %d orphan blobs", n)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next pass retries
                log.warning("garbage collection pass failed: %r", exc)


def metadata_check(session: aiohttp.ClientSession, addresses: Sequence[str], secret: str,
                   tls: ssl.SSLContext | None, node_id: str = "") -> Check:
    """A ``check`` that asks the metadata leader (:func:`objstore.node.register.call_leader`:
    ``addresses`` in turn, NotLeader hints followed); raises ServiceUnavailable when none
    answers."""

    hint = LeaderHint()  # the member that answered last is asked first

    async def check(refs: list[list]) -> list[str]:
        try:
            d = await call_leader(session, addresses, secret, tls, CHECK_PATH, {"refs": refs, "node": node_id}, hint)
        except LeaderError as exc:
            raise ServiceUnavailable(f"no metadata node answered the garbage-collection check ({exc})") from None
        status = d.get("status") if isinstance(d, dict) else None
        if not isinstance(status, list) or len(status) != len(refs):
            raise ServiceUnavailable("malformed answer to a garbage-collection check")
        return status

    return check
