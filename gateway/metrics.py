"""The gateway's metric families, beside the shared ones of :mod:`objstore.metrics`.

Shared (role="gateway"): ``objstore_requests_total{op,status}`` (S3 requests by operation and
status code; the status class is ``status=~"5.."`` in PromQL), ``objstore_request_seconds{op}``
(latency histogram by operation), ``objstore_bytes_in_total`` / ``objstore_bytes_out_total``.
Added here:

- ``objstore_s3_requests_in_flight``                          gauge
- ``objstore_gateway_stale_seconds``                          gauge (the stale window in use)
- ``objstore_s3_errors_total{code}``                          counter, by S3 error code
- ``objstore_gateway_backend_request_duration_seconds{backend,call}`` histogram: each call to a
  metadata node (``backend="metadata"``) or storage node (``"storage"``) until its response
  headers, ``call`` being the method and the path's route (``GET /v1/object``, ``PUT /blobs``)
- ``objstore_s3_bucket_requests_total{bucket,operation,status_class}`` counter, only with
  ``--bucket-metrics``. Cardinality: buckets x operations used x status classes; bucket names
  come only from authenticated requests, and past ``MAX_BUCKET_LABELS`` distinct names the
  rest count as bucket="_other".
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import aiohttp
from prometheus_client import Counter, Gauge, Histogram

from gateway.request_log import REQUEST_ID
from objstore.http_common import REQUEST_ID_HEADER
from objstore.manifest import LEVELS
from objstore.metrics import LATENCY_BUCKETS, Metrics, status_class

MAX_BUCKET_LABELS = 1000
OTHER_BUCKET = "_other"


def backend_call(method: str, path: str) -> tuple[str, str]:
    """(backend, call) of an internal request: bounded labels from its method and path."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] in ("v1", "raft"):
        return "metadata", f"{method} /{parts[1]}/{parts[2]}"
    return "storage", f"{method} /{parts[1] if len(parts) > 1 else ''}"


class GatewayMetrics(Metrics):
    """:class:`Metrics` of role "gateway" plus the families in the module docstring."""

    def __init__(self, bucket_metrics: bool = False) -> None:
        super().__init__("gateway")
        r = self.registry
        self.in_flight = Gauge("objstore_s3_requests_in_flight", "S3 requests being served", registry=r)
        # Counted by the S3 middleware as a plain number and read when scraped (a gauge's
        # inc and dec take its lock twice per request).
        self.serving = 0
        self.in_flight.set_function(lambda: self.serving)
        self.stale_seconds = Gauge("objstore_gateway_stale_seconds",
                                   "How far past expiry the cached credentials/bucket records in use are "
                                   "(0: fresh; >0 only while the metadata service has no majority)", registry=r)
        self.errors = Counter("objstore_s3_errors", "S3 error responses by error code", ["code"], registry=r)
        self.backend = Histogram("objstore_gateway_backend_request_duration_seconds",
                                 "Calls to metadata and storage nodes, until their response headers",
                                 ["backend", "call"], buckets=LATENCY_BUCKETS, registry=r)
        self.by_bucket = Counter("objstore_s3_bucket_requests", "S3 requests by bucket (--bucket-metrics)",
                                 ["bucket", "operation", "status_class"], registry=r) if bucket_metrics else None
        self._bucket_labels: set[str] = set()
        self._backend_children: dict[tuple[str, str, str], Histogram] = {}
        self.consistency = Counter("objstore_s3_reads_by_consistency", "Reads answered, by the consistency level "
                                   "that served them (x-objstore-consistency)", ["level"], registry=r)
        # bounded labels, each shown from the start; the children kept (a labels() call per read
        # costs more than the count)
        self._consistency_children = {level: self.consistency.labels(level) for level in LEVELS}

    def observe_consistency(self, level: str | None) -> None:
        """Count a read served at ``level`` (the response's x-objstore-consistency)."""
        child = self._consistency_children.get(level) if level is not None else None
        if child is not None:
            child.inc()

    def observe_error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def observe_bucket(self, bucket: str | None, op: str, status: int) -> None:
        """Count a request of an authenticated caller against ``bucket`` (with --bucket-metrics)."""
        if self.by_bucket is None or not bucket:
            return
        if bucket not in self._bucket_labels:
            if len(self._bucket_labels) >= MAX_BUCKET_LABELS:
                bucket = OTHER_BUCKET
            else:
                self._bucket_labels.add(bucket)
        self.by_bucket.labels(bucket, op, status_class(status)).inc()

    def backend_timer(self, method: str, path_qs: str) -> Histogram:
        """The histogram child timing calls of ``method`` to ``path_qs`` (children cached: the
        labels are a small fixed set, see :func:`backend_call`)."""
        path = path_qs.partition("?")[0]
        parts = path.split("/", 3)
        top = parts[1] if len(parts) > 1 else ""
        shape = (method, top, parts[2] if len(parts) > 2 and top in ("v1", "raft") else "")
        child = self._backend_children.get(shape)
        if child is None:
            if len(self._backend_children) >= 1024:
                self._backend_children.clear()
            child = self._backend_children[shape] = self.backend.labels(*backend_call(method, path))
        return child

    def call_observer(self) -> "BackendCalls":
        """The :class:`objstore.internal_http.CallObserver` of the gateway's internal call pool:
        the same request-id header and backend timings as :meth:`trace_config`."""
        return BackendCalls(self)

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp trace that times every call of the gateway's client session and tags it
        with the request id of the S3 request it serves."""
        trace = aiohttp.TraceConfig()

        async def start(_session: aiohttp.ClientSession, ctx: SimpleNamespace,
                        params: aiohttp.TraceRequestStartParams) -> None:
            ctx.started = time.perf_counter()
            request_id = REQUEST_ID.get()
            if request_id:  # the S3 request this call serves (gateway.request_log)
                params.headers[REQUEST_ID_HEADER] = request_id

        async def end(_session: aiohttp.ClientSession, ctx: SimpleNamespace,
                      params: aiohttp.TraceRequestEndParams | aiohttp.TraceRequestExceptionParams) -> None:
            self.backend_timer(params.method, params.url.path).observe(time.perf_counter() - ctx.started)

        trace.on_request_start.append(start)
        trace.on_request_end.append(end)
        trace.on_request_exception.append(end)
        return trace


class BackendCalls:
    """Tags each internal call with the request id of the S3 request it serves and times it."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def start(self, method: str, path_qs: str, headers: dict[str, str]) -> float:
        request_id = REQUEST_ID.get()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        return time.perf_counter()

    def end(self, method: str, path_qs: str, token: object) -> None:
        self._metrics.backend_timer(method, path_qs).observe(time.perf_counter() - float(token))
