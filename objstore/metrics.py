"""Prometheus metrics, one registry per process (so tests can run several in one interpreter).

Names shared by every role:
- ``objstore_requests_total{role,op,status}``          counter
- ``objstore_request_seconds{role,op}``                histogram
- ``objstore_bytes_in_total{role}`` / ``objstore_bytes_out_total{role}`` counters
- ``objstore_storage_used_bytes{node}``                 gauge (storage nodes)

Each role adds its own families to ``Metrics.registry`` (``objstore/node/node_metrics.py``,
``metadata/metrics.py``, ``gateway/metrics.py``). Labels stay bounded: operation names,
status codes, error codes, node ids and states, never object keys; bucket names only on
the metadata leader's usage gauges and, with ``--bucket-metrics``, on one gateway counter.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)  # batch sizes
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


LATENCY_BUCKETS = _BUCKETS
MAX_CACHED_CHILDREN = 4096


def status_class(status: int) -> str:
    """``"2xx"`` .. ``"5xx"``: an HTTP status as a bounded label value."""
    return f"{status // 100}xx"


class Metrics:
    """The metrics of one process playing ``role`` (gateway, storage, metadata)."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "objstore_requests", "Requests served", ["role", "op", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "objstore_request_seconds", "Request latency", ["role", "op"], buckets=_BUCKETS, registry=self.registry
        )
        self.bytes_in = Counter("objstore_bytes_in", "Body bytes received", ["role"], registry=self.registry)
        self.bytes_out = Counter("objstore_bytes_out", "Body bytes sent", ["role"], registry=self.registry)
        # Label children of the per-request families, looked up once (labels() costs a lock
        # and a validation per call); bounded, the label values are a small fixed set.
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._bytes_in = self.bytes_in.labels(role)
        self._bytes_out = self.bytes_out.labels(role)
        self.storage_used = Gauge(
            "objstore_storage_used_bytes", "Bytes used by blobs on a storage node", ["node"], registry=self.registry
        )

    def observe_request(self, op: str, status: int, seconds: float) -> None:
        children = self._request_children.get((op, status))
        if children is None:
            if len(self._request_children) >= MAX_CACHED_CHILDREN:
                self._request_children.clear()
            children = self._request_children[(op, status)] = (
                self.requests.labels(self.role, op, str(status)), self.latency.labels(self.role, op))
        children[0].inc()
        children[1].observe(seconds)

    def add_bytes_in(self, n: int) -> None:
        if n:
            self._bytes_in.inc(n)

    def add_bytes_out(self, n: int) -> None:
        if n:
            self._bytes_out.inc(n)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
