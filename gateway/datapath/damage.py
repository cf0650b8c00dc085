"""Read repair: copies a read had to fail over from (missing or corrupt on their node) are
reported to the metadata leader, which verifies them and has them re-created.

Fire-and-forget and bounded: reports wait in a buffer of at most ``MAX_PENDING`` (more are
dropped; a later read or the scrub reports again), one sender at a time posts them in
batches, and a failed send is not retried. A report never delays or fails the read.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Coroutine

from metadata.api.client import MetadataClient
from objstore.repair_records import DamageReport

log = logging.getLogger(__name__)

MAX_PENDING = 1_000
BATCH = 100


class DamageReporter:
    """``spawn(coro)`` runs a coroutine in the background (the gateway's ``background``)."""

    def __init__(self, meta: MetadataClient, spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.meta = meta
        self.spawn = spawn
        self.pending: dict[DamageReport, None] = {}
        self.sending = False
        self.sent = 0
        self.dropped = 0

    def note(self, report: DamageReport) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self.pending[report] = None
        if not self.sending:
            self.sending = True
            self.spawn(self._send())

    async def _send(self) -> None:
        try:
            while self.pending:
                batch = list(self.pending)[:BATCH]
                for r in batch:
                    del self.pending[r]
                try:
                    self.sent += await self.meta.report_damage(batch)
                except Exception as exc:  # noqa: BLE001 - best effort
                    log.info("could not report %d damaged copies: %r", len(batch), exc)
        finally:
            self.sending = False


def blob_reporter(note: Callable[[DamageReport], None] | None, bucket: str, key: str, version_id: str,
                  part: int) -> Callable[[str, int, str], None] | None:
    """``(node id, shard, reason)`` -> a report of one copy of one blob, or None without ``note``."""
    if note is None:
        return None

    def report(node_id: str, shard: int, reason: str) -> None:
        note(DamageReport(bucket, key, version_id, node_id, part, shard, reason))

    return report
