"""The storage node's own metric families (besides the shared ones of :mod:`objstore.metrics`).

Read at scrape time from the store (space, blobs), or observed as group commits finish
(batch size, write+fsync duration). Every family carries only the ``node`` label.

- ``objstore_storage_capacity_bytes{node}`` / ``objstore_storage_free_bytes{node}`` gauges
- ``objstore_storage_commit_batch_records{node}`` histogram: records per group commit
- ``objstore_storage_fsync_duration_seconds{node}`` histogram: one batch's write and fsync
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily

from objstore.metrics import COUNT_BUCKETS, LATENCY_BUCKETS, Metrics


class StorageNodeMetrics:
    """Space gauges (from ``space()``, a dict with ``capacity_bytes`` and ``used_bytes``, or
    None while the store opens) and group-commit histograms, on ``metrics.registry``."""

    def __init__(self, metrics: Metrics, node_id: str, space: Callable[[], dict[str, Any] | None]) -> None:
        self._node = node_id
        self._space = space
        self.batch = Histogram("objstore_storage_commit_batch_records", "Records made durable per group commit",
                               ["node"], buckets=COUNT_BUCKETS, registry=metrics.registry).labels(node_id)
        self.fsync = Histogram("objstore_storage_fsync_duration_seconds",
                               "Duration of one group commit's write and fsync", ["node"],
                               buckets=LATENCY_BUCKETS, registry=metrics.registry).labels(node_id)
        metrics.registry.register(self)

    def observe_batch(self, records: int, seconds: float) -> None:
        self.batch.observe(records)
        self.fsync.observe(seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:  # the prometheus collector protocol
        space = self._space()
        if space is None:
            return
        capacity, used = space["capacity_bytes"], space["used_bytes"]
        free = space.get("free_bytes", max(capacity - used, 0))
        for name, doc, value in (("capacity", "Bytes this node may hold", capacity),
                                 ("free", "Bytes still free for blobs", free)):
            g = GaugeMetricFamily(f"objstore_storage_{name}_bytes", doc, labels=["node"])
            g.add_metric([self._node], value)
            yield g


def store_space(store: Any) -> dict[str, Any]:
    """The store's space figures (:meth:`objstore.node.store.BlobStore.space`)."""
    return store.space()
