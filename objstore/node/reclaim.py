"""Wiring of the storage node's space reclaiming: the compaction and garbage-collection
loops (their intervals from the node's config; 0 turns one off) and their metrics.

Metrics (per node): ``objstore_compaction_reclaimed_bytes_total``,
``objstore_compaction_copied_bytes_total``, ``objstore_compaction_segments_total``,
``objstore_compaction_tombstones_dropped_total``, ``objstore_gc_collected_blobs_total``,
``objstore_gc_collected_bytes_total``, ``objstore_storage_tombstones`` and
``objstore_storage_open_segment_readers`` (gauges).
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

import aiohttp
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from objstore.config import StorageConfig
from objstore.node.compaction import Compactor
from objstore.node.gc import GarbageCollector, metadata_check
from objstore.node.store import BlobStore
from objstore.tls import client_context

COMPACTOR = web.AppKey("compactor", Compactor)
GC = web.AppKey("gc", GarbageCollector)


def reclaim_context(cfg: StorageConfig, store: Callable[[], BlobStore]):  # noqa: ANN201 - an aiohttp cleanup ctx
    """The cleanup context that runs the node's loops while the app runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        compactor = Compactor(store(), threshold=cfg.compaction_threshold, rate=cfg.compaction_rate * 1e6)
        app[COMPACTOR] = compactor
        tasks = []
        if cfg.compaction_interval > 0:
            tasks.append(loop.create_task(compactor.run(cfg.compaction_interval), name="compaction"))
        session = None
        if cfg.metadata:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=3))
            gc = GarbageCollector(store(), metadata_check(session, cfg.metadata, cfg.secret,
                                                          client_context(cfg.tls_ca), cfg.node_id), cfg.gc_grace)
            app[GC] = gc
            if cfg.gc_interval > 0:
                tasks.append(loop.create_task(gc.run(cfg.gc_interval), name="gc"))
        yield
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if session is not None:
            await session.close()

    return ctx


def reclaim_metrics(node: str, compactor: Compactor | None, gc: GarbageCollector | None) -> list:
    """The metric families of one scrape."""
    out = []

    def counter(name: str, doc: str, value: float) -> None:
        fam = CounterMetricFamily(name, doc, labels=["node"])
        fam.add_metric([node], value)
        out.append(fam)

    if compactor is not None:
        st = compactor.stats
        counter("objstore_compaction_reclaimed_bytes", "Bytes reclaimed by segment compaction", st.reclaimed_bytes)
        counter("objstore_compaction_copied_bytes", "Live bytes copied by segment compaction", st.copied_bytes)
        counter("objstore_compaction_segments", "Segments compacted", st.segments_compacted)
        counter("objstore_compaction_tombstones_dropped", "Tombstones dropped by compaction", st.tombstones_dropped)
        store = compactor.store
        for name, doc, value in (
            ("objstore_storage_tombstones", "Tombstones held in memory", store.index.tombstone_count),
            ("objstore_storage_open_segment_readers", "Open segment read descriptors",
             store.segments.readers.open_count),
        ):
            g = GaugeMetricFamily(name, doc, labels=["node"])
            g.add_metric([node], value)
            out.append(g)
    if gc is not None:
        counter("objstore_gc_collected_blobs", "Orphan blobs deleted by garbage collection", gc.stats.collected_blobs)
        counter("objstore_gc_collected_bytes", "Bytes of orphan blobs deleted", gc.stats.collected_bytes)
    return out
