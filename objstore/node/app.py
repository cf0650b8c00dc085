"""The storage node's internal HTTP service (aiohttp), authenticated by the cluster secret.

Endpoints (``{vid}`` a version id, ``{shard}`` a shard/replica index):
- ``PUT /blobs/{vid}/{shard}``  headers X-Objstore-Bucket, X-Objstore-Key (percent-encoded
  UTF-8), X-Objstore-Policy, Content-Length -> 201 ``{"size", "xxh64"}`` once durable.
  A re-PUT of an existing blob replaces it atomically. 507 InsufficientStorage when the
  blob would eat into the node's reserve: with ``Expect: 100-continue`` that answer comes
  before "100 Continue", so the client never sends the body.
- ``PUT /blobs/batch``  body: several small blobs (:mod:`objstore.node.blob_batch`) ->
  ``{"results": [...]}``, per blob ``{"size", "xxh64"}`` once durable or its error; the
  blobs join the same group commit as single writes. A malformed body stores nothing (400).
- ``GET /blobs/{vid}/{shard}``  optional ``Range: bytes=a-b`` -> 200/206 verified stream.
- ``HEAD /blobs/{vid}/{shard}`` -> 200 with X-Objstore-Size, or 404.
- ``DELETE /blobs/{vid}/{shard}`` -> 204, idempotent.
- ``GET /keys?bucket=&key=``   -> ``{"versions": [{version_id, shard, size, created, ...}]}``.
- ``GET /stats``               -> ``{node_id, capacity_bytes, used_bytes, free_bytes, reserve_bytes,
  blob_count, segments, ...}``.
- ``GET /v1/scrub``            -> the scrubber's status (:meth:`objstore.node.scrub.Scrubber.status`).
- ``POST /v1/scrub/start``     -> ``{"pass_id": n, "status": {...}}``: a scrub pass starts now
  (or the running one goes on); it has ended when ``passes_completed >= n``.
- ``PUT /manifests?ring_epoch=E`` body: a commit manifest (:mod:`objstore.manifest`) placed by
  the ring of epoch E -> ``{"stored": bool}`` once durable (:mod:`objstore.node.manifests`);
  409 StaleRingEpoch when E is below the node's fence.
- ``GET /manifests?bucket=&key=[&ring_epoch=E]`` -> ``{"manifests": [...]}``, newest commit
  index first; 409 StaleRingEpoch when E (a quorum reader's ring) is below the fence.
- ``PUT /manifests/batch``      body ``{"manifests": [...], "ring_epoch": E}`` (at most 4096) ->
  ``{"stored": n}``, one fsync for the batch (the ring hand-over of :mod:`gateway.ring_epochs`).
- ``GET /manifests/page?after_bucket=&after_key=&limit=&cursor=&fence=E`` -> ``{"keys":
  [{"bucket", "key", "manifests"}], "cursor"}``: the fence raised to E first, then the next
  keys in (bucket, key) order (at most 1000); pass ``cursor`` back for the next page.
- ``/health``, ``/metrics``     public.

In the background the node compacts its segments and collects orphan blobs
(:mod:`objstore.node.reclaim`).

Invariants: no byte that failed verification is ever sent. The header and first chunk
verify before a GET's status line is sent (so a corrupt blob is usually a 500 CorruptBlob);
a block failing later aborts the connection, so the client sees a truncated body. Either
way the record is quarantined (never served again: 404) and reported for repair
(:meth:`objstore.node.scrub.Scrubber.found_corrupt`).
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from typing import AsyncIterator
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from objstore.config import StorageConfig
from objstore.errors import (CorruptBlob, IncompleteBody, InvalidArgument, InvalidRange, MissingContentLength,
                             ObjstoreError)
from objstore.http_common import InternalCalls, add_health_and_metrics
from objstore.metrics import Metrics
from objstore.node import blob_batch
from objstore.node.blob import BlobId
from objstore.node.heartbeat import heartbeat_task
from objstore.node.hot_front import HotRoutes, HotSite, LeanRequest, whole_response
from objstore.node.index import Entry
from objstore.node.node_metrics import StorageNodeMetrics, store_space
from objstore.node.repair_report import ReportQueue, metadata_sender
from objstore.node.repair_worker import repair_task
from objstore.node.scrub import MB, ScrubCollector, Scrubber
from objstore.node.reclaim import COMPACTOR, GC, reclaim_context, reclaim_metrics
from objstore.node.store import BlobStore, StoreOptions
from objstore.process_exit import freeze_for_exit
from objstore.manifest import CommitManifest
from objstore.node.manifests import ManifestStore
from objstore.tls import clear_text_warning, client_context, server_context

log = logging.getLogger(__name__)
WHOLE_BODY_LIMIT = 256 * 1024  # blobs up to this size are answered in one write

STORE = web.AppKey("store", BlobStore)
MANIFESTS = web.AppKey("manifests", ManifestStore)
METRICS = web.AppKey("metrics", Metrics)
CONFIG = web.AppKey("config", StorageConfig)
CORRUPT = web.AppKey("corrupt_reads", Counter)
SCRUB = web.AppKey("scrub", Scrubber)
HOT = web.AppKey("hot_routes", HotRoutes)
HOT_SHUTDOWN_SECONDS = 2.0  # a stopping node waits this long for hot calls still served (after its drain)
FRONT_ENV = "OBJSTORE_NODE_FRONT"  # "aiohttp": every call through aiohttp's server (for comparison)

BUCKET_HEADER = "X-Objstore-Bucket"
KEY_HEADER = "X-Objstore-Key"
POLICY_HEADER = "X-Objstore-Policy"
SIZE_HEADER = "X-Objstore-Size"

_RANGE_RE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


def parse_range(value: str | None, size: int) -> tuple[int | None, int | None]:
    """A single ``bytes=`` range as inclusive (start, end) or (None, None) for no range.

    Suffix ranges (``bytes=-n``) become the last n bytes. Raises InvalidRange.
    """
    if value is None:
        return None, None
    m = _RANGE_RE.match(value.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise InvalidRange(f"unsupported range {value!r}")
    if not m.group(1):
        n = int(m.group(2))
        if n == 0 or size == 0:
            raise InvalidRange(f"range {value!r} not satisfiable", ActualObjectSize=size)
        return max(size - n, 0), size - 1
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None


def _text_header(request: web.Request, name: str) -> str:
    raw = request.headers.get(name)
    if raw is None:
        raise InvalidArgument(f"missing header {name}")
    try:
        return unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument(f"header {name} is not percent-encoded UTF-8") from None


def _blob_id(request: web.Request) -> BlobId:
    return BlobId.parse(request.match_info["vid"], request.match_info["shard"])


def _op_of(request: web.Request) -> str:
    route = request.match_info.route
    return route.name or "other" if route is not None else "other"


async def _no_early_continue(request: web.Request) -> None:
    """Expect handler: answer nothing yet; :func:`_body` sends "100 Continue" when the store
    starts reading the body (so a refusal, e.g. 507, comes before the client sends it)."""


async def _body(request: web.Request, metrics: Metrics) -> AsyncIterator[bytes]:
    """The request body; a connection that ends early becomes IncompleteBody."""
    if request.version == HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not part of the response
    try:
        async for chunk in request.content.iter_any():  # what is buffered, in one piece
            metrics.add_bytes_in(len(chunk))
            yield chunk
    except (HttpProcessingError, ConnectionError) as exc:
        raise IncompleteBody(f"request body ended early: {exc}") from None


async def put_blob(request: web.Request) -> web.Response:
    app = request.app
    bid = _blob_id(request)
    size = request.content_length
    if size is None:
        raise MissingContentLength()
    bucket, key = _text_header(request, BUCKET_HEADER), _text_header(request, KEY_HEADER)
    policy = request.headers.get(POLICY_HEADER)
    if not policy:
        raise InvalidArgument(f"missing header {POLICY_HEADER}")
    if type(request) is LeanRequest and len(request._body) == size:  # received whole by the lean front
        app[METRICS].add_bytes_in(size)
        result = await app[STORE].put_bytes(bid, bucket, key, policy, request._body)
    else:
        result = await app[STORE].put(bid, bucket, key, policy, size, _body(request, app[METRICS]))
    # {"size", "xxh64"} (a number and 16 hex digits) formatted directly: json.dumps and
    # json_response cost a small write more than the rest of its answer.
    return _json_bytes(b'{"size": %d, "xxh64": "%s"}' % (result.size, result.xxh64.encode("ascii")), 201, request)


async def put_blob_batch(request: web.Request) -> web.Response:
    """Several small blobs in one call: each stored as by :func:`put_blob`, in one group
    commit (one write and fsync), answered once all are durable or refused."""
    app = request.app
    body = await request.read()
    blobs = blob_batch.decode_request(body)  # whole, before anything is stored
    app[METRICS].add_bytes_in(len(body))
    outcomes = await app[STORE].put_many([(bid, b.bucket, b.key, b.policy, b.data) for bid, b in blobs])
    # Each blob answers its own outcome: one whose group commit failed (a failed disk) is
    # an InternalError, one made durable by another commit of the same call is stored.
    return _json_bytes(blob_batch.encode_answer(
        [r if isinstance(r, ObjstoreError) else (r.size, r.xxh64) for r in outcomes]), 200, request)


def _json_bytes(body: bytes, status: int = 200, request: object = None) -> web.Response:
    """A JSON answer already encoded (for the small answers of the hot calls); given the
    request, a plain answer when the lean front serves it (:func:`whole_response`)."""
    if request is not None:
        return whole_response(request, status, {"Content-Type": "application/json"}, body)
    return web.Response(body=body, status=status, content_type="application/json")


_STORED = {True: b'{"stored": true}', False: b'{"stored": false}'}


# What quote(text, safe="") leaves as it is, and "/" (which it encodes as %2F): most names.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.~/-]*")


def _quote_name(text: str) -> str:
    """``quote(text, safe="")``, without its per-character work for a name of plain ASCII
    letters, digits, ``_.~-`` and slashes."""
    if _PLAIN_NAME.fullmatch(text):
        return text.replace("/", "%2F")
    return quote(text, safe="")


def _blob_headers(size: int, bucket: str, key: str) -> dict[str, str]:
    return {
        SIZE_HEADER: str(size),
        BUCKET_HEADER: _quote_name(bucket),
        KEY_HEADER: _quote_name(key),
        "Accept-Ranges": "bytes",
    }


async def get_blob(request: web.Request) -> web.StreamResponse:
    app = request.app
    bid = _blob_id(request)
    store = app[STORE]
    entry = store.head(bid)
    start, end = parse_range(request.headers.get("Range"), entry.header.size)
    ranged = start is not None or end is not None
    try:
        read = await store.open_read(bid, start, end)
    except CorruptBlob as exc:
        await _corrupt_read(app, entry, exc)
        raise
    async with read:
        h = read.header
        headers = _blob_headers(h.size, h.bucket, h.key)
        if ranged:
            headers["Content-Range"] = f"bytes {read.start}-{read.end}/{read.size}"
        if read.length <= WHOLE_BODY_LIMIT:
            # A small blob is verified whole, then sent with its headers in one write.
            whole = read.whole()  # verified when the read was opened: a small read's case
            try:
                body = bytes(whole) if whole is not None else b"".join([chunk async for chunk in read.chunks()])
            except CorruptBlob as exc:
                await _corrupt_read(app, read.entry, exc)
                raise
            app[METRICS].add_bytes_out(len(body))
            return whole_response(request, 206 if ranged else 200, headers, body)
        resp = web.StreamResponse(status=206 if ranged else 200, headers=headers)
        resp.content_length = read.length
        await resp.prepare(request)
        try:
            async for chunk in read.chunks():
                await resp.write(chunk)
                app[METRICS].add_bytes_out(len(chunk))
        except CorruptBlob as exc:
            log.error("corrupt blob %s/%d mid-stream, aborting the response", bid.version_id, bid.shard)
            await _corrupt_read(app, read.entry, exc)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError() from None
        await resp.write_eof()
    return resp


async def _corrupt_read(app: web.Application, entry: Entry, exc: CorruptBlob) -> None:
    """A read found ``entry`` corrupt: count it, quarantine it and report it."""
    app[CORRUPT].inc()
    log.error("corrupt blob %s/%d refused: %s", entry.blob_id.version_id, entry.blob_id.shard, exc)
    await app[SCRUB].found_corrupt(entry, str(exc))


async def head_blob(request: web.Request) -> web.Response:
    entry = request.app[STORE].head(_blob_id(request))
    h = entry.header
    resp = web.Response(status=200, headers=_blob_headers(h.size, h.bucket, h.key))
    resp.headers["X-Objstore-Xxh64"] = f"{entry.data_xxh:016x}"
    return resp


async def delete_blob(request: web.Request) -> web.Response:
    await request.app[STORE].delete(_blob_id(request))
    return web.Response(status=204)


async def list_versions(request: web.Request) -> web.Response:
    bucket, key = request.query.get("bucket"), request.query.get("key")
    if bucket is None or key is None:
        raise InvalidArgument("bucket and key are required")
    entries = request.app[STORE].versions(bucket, key)
    return web.json_response({"versions": [e.describe() for e in entries]})


async def stats(request: web.Request) -> web.Response:
    return web.json_response({"node_id": request.app[CONFIG].node_id, **request.app[STORE].stats()})


async def scrub_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[SCRUB].status())


async def scrub_start(request: web.Request) -> web.Response:
    scrub = request.app[SCRUB]
    pass_id = scrub.start_pass()
    return web.json_response({"pass_id": pass_id, "status": scrub.status()}, status=202)


async def put_manifest(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidArgument("a manifest is a JSON object") from None
    stored = await request.app[MANIFESTS].put(CommitManifest.from_dict(body if isinstance(body, dict) else {}),
                                              _epoch(request.query.get("ring_epoch", "0")))
    return _json_bytes(_STORED[bool(stored)], request=request)


def _epoch(raw: object) -> int:
    """A ring epoch from a query or body; InvalidArgument unless it is a whole number >= 0."""
    try:
        epoch = int(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InvalidArgument("a ring epoch is a whole number") from None
    if epoch < 0:
        raise InvalidArgument("a ring epoch is a whole number")
    return epoch


async def get_manifests(request: web.Request) -> web.Response:
    bucket, key = request.query.get("bucket"), request.query.get("key")
    if bucket is None or key is None:
        raise InvalidArgument("bucket and key are required")
    found = request.app[MANIFESTS].get(bucket, key, _epoch(request.query.get("ring_epoch", "0")))
    return web.json_response({"manifests": [m.to_dict() for m in found]})


MAX_MANIFEST_BATCH = 4096  # manifests in one PUT /manifests/batch
MAX_MANIFEST_PAGE = 1000  # keys in one GET /manifests/page


async def put_manifest_batch(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        listed = body["manifests"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument('a manifest batch is {"manifests": [...]}') from None
    if not isinstance(listed, list) or len(listed) > MAX_MANIFEST_BATCH:
        raise InvalidArgument(f"a manifest batch holds a list of at most {MAX_MANIFEST_BATCH} manifests")
    manifests = [CommitManifest.from_dict(d if isinstance(d, dict) else {}) for d in listed]
    stored = await request.app[MANIFESTS].put_many(manifests, _epoch(body.get("ring_epoch", 0)))
    return _json_bytes(b'{"stored": %d}' % stored, request=request)


async def get_manifest_page(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = min(int(q.get("limit", "500")), MAX_MANIFEST_PAGE)
    except ValueError:
        raise InvalidArgument("limit is a number") from None
    page, cursor = await asyncio.to_thread(request.app[MANIFESTS].walk_page,
                                           (q.get("after_bucket", ""), q.get("after_key", "")), max(1, limit),
                                           q.get("cursor", ""), _epoch(q.get("fence", "0")))
    return web.json_response({"keys": [{"bucket": b, "key": k, "manifests": [m.to_dict() for m in found]}
                                       for b, k, found in page], "cursor": cursor})


async def _manifests_ctx(app: web.Application) -> AsyncIterator[None]:
    store = ManifestStore(app[CONFIG].data_dir)
    await asyncio.to_thread(store.open)
    app[MANIFESTS] = store
    yield
    await store.drain()  # manifests accepted before shutdown are written, not failed
    store.close()


class _StoreCollector:
    """Exposes the store's counters (fsyncs, group-committed records, blobs) at scrape time."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self):  # noqa: ANN201 - prometheus collector protocol
        store = self._app.get(STORE)
        node = self._app[CONFIG].node_id
        s = store.stats() if store is not None else {}
        fs = CounterMetricFamily("objstore_storage_fsyncs", "Group-commit fsyncs", labels=["node"])
        fs.add_metric([node], s.get("fsyncs", 0))
        rec = CounterMetricFamily("objstore_storage_group_committed_records", "Records made durable by group commit", labels=["node"])
        rec.add_metric([node], s.get("group_committed_records", 0))
        blobs = GaugeMetricFamily("objstore_storage_blobs", "Blobs held", labels=["node"])
        blobs.add_metric([node], s.get("blob_count", 0))
        return [fs, rec, blobs, *reclaim_metrics(node, self._app.get(COMPACTOR), self._app.get(GC))]


def create_app(cfg: StorageConfig, options: StoreOptions | None = None) -> web.Application:
    """The storage node application; the store opens on start-up and closes on cleanup."""
    cfg = cfg.validate()
    metrics = Metrics("storage")
    drain = Drain()
    calls = InternalCalls(cfg.secret, metrics, _op_of)
    app = web.Application(middlewares=[drain.middleware, *calls.middlewares()])
    app[DRAIN] = drain
    app[CONFIG] = cfg
    app[METRICS] = metrics
    app[CORRUPT] = Counter("objstore_storage_corrupt_reads", "Reads refused or aborted for failed checksums",
                           registry=metrics.registry)
    metrics.registry.register(_StoreCollector(app))
    metrics.registry.register(ScrubCollector(lambda: app[SCRUB].status() if SCRUB in app else None, cfg.node_id))
    node_metrics = StorageNodeMetrics(metrics, cfg.node_id, lambda: store_space(app[STORE]) if STORE in app else None)
    opts = options or StoreOptions(capacity_bytes=cfg.capacity_bytes, max_segment_bytes=cfg.segment_bytes,
                                   reserve_bytes=None if cfg.reserve_bytes < 0 else cfg.reserve_bytes)

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        store = BlobStore(cfg.data_dir, opts)
        store.batch_observer = node_metrics.observe_batch  # before open: every batch is counted
        await store.open()
        app[STORE] = store
        # Read at every scrape, so the gauge is always current.
        metrics.storage_used.labels(cfg.node_id).set_function(lambda: store.used_bytes)
        yield
        await store.close()

    async def heartbeat_ctx(app: web.Application) -> AsyncIterator[None]:
        # Heartbeats register the node on the first one, then keep it alive in the cluster map.
        task = asyncio.get_running_loop().create_task(heartbeat_task(cfg, app))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def scrub_ctx(app: web.Application) -> AsyncIterator[None]:
        reports: ReportQueue | None = None
        session: aiohttp.ClientSession | None = None
        tasks: list[asyncio.Task] = []
        if cfg.metadata:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, connect=3))
            reports = ReportQueue(metadata_sender(session, cfg.metadata, cfg.secret, client_context(cfg.tls_ca)))
            tasks.append(asyncio.get_running_loop().create_task(reports.run()))
        scrub = Scrubber(app[STORE], cfg.node_id, cfg.scrub_rate * MB, cfg.scrub_interval, reports)
        await scrub.start()
        app[SCRUB] = scrub
        yield
        await scrub.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if session is not None:
            await session.close()

    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(_manifests_ctx)
    app.cleanup_ctx.append(scrub_ctx)
    app.cleanup_ctx.append(reclaim_context(cfg, lambda: app[STORE]))
    if cfg.metadata:
        app.cleanup_ctx.append(heartbeat_ctx)
    if cfg.metadata and cfg.repair_rate > 0:
        app.cleanup_ctx.append(_repair_ctx(cfg, metrics))
    r = app.router
    r.add_put(blob_batch.PATH, put_blob_batch, name="put_blob_batch")
    r.add_put("/blobs/{vid}/{shard}", put_blob, name="put_blob", expect_handler=_no_early_continue)
    r.add_get("/blobs/{vid}/{shard}", get_blob, name="get_blob", allow_head=False)
    r.add_head("/blobs/{vid}/{shard}", head_blob, name="head_blob")
    r.add_delete("/blobs/{vid}/{shard}", delete_blob, name="delete_blob")
    r.add_get("/keys", list_versions, name="list_versions")
    r.add_get("/stats", stats, name="stats")
    r.add_get("/v1/scrub", scrub_status, name="scrub_status")
    r.add_post("/v1/scrub/start", scrub_start, name="scrub_start")
    r.add_put("/manifests", put_manifest, name="put_manifest")
    r.add_get("/manifests", get_manifests, name="get_manifests")
    r.add_put("/manifests/batch", put_manifest_batch, name="put_manifest_batch")
    r.add_get("/manifests/page", get_manifest_page, name="get_manifest_page")

    async def ready() -> tuple[bool, str]:  # the index is rebuilt once the store is open
        return (True, "") if STORE in app else (False, "the blob index is being rebuilt")

    add_health_and_metrics(app, metrics, lambda: {"node_id": cfg.node_id, "role": "storage"}, ready,
                           cfg.metrics_token)
    hot = app[HOT] = HotRoutes(app, calls, drain, {
        "put_blob": put_blob, "get_blob": get_blob, "delete_blob": delete_blob, "put_manifest": put_manifest,
        "get_manifests": get_manifests, "put_manifest_batch": put_manifest_batch,
        "put_blob_batch": put_blob_batch}, WHOLE_BODY_LIMIT)

    async def finish_hot_calls(app: web.Application) -> None:  # before the cleanup closes the store
        await hot.finish(HOT_SHUTDOWN_SECONDS)

    app.on_shutdown.append(finish_hot_calls)
    return app


def site(runner: web.AppRunner, host: str, port: int, **kwargs: object) -> web.TCPSite:
    """Where a node's application (``runner.app``) listens: its hot calls served by the lean
    front (:mod:`objstore.node.hot_front`), the rest by aiohttp; every call by aiohttp when
    ``OBJSTORE_NODE_FRONT=aiohttp`` is in the environment."""
    if os.environ.get(FRONT_ENV, "") == "aiohttp":
        return web.TCPSite(runner, host, port, **kwargs)  # type: ignore[arg-type]
    return HotSite(runner, host, port, routes=runner.app[HOT], **kwargs)


def _repair_ctx(cfg: StorageConfig, metrics: Metrics):  # noqa: ANN202 - an aiohttp cleanup context
    """Runs the repair worker (objstore.node.repair_worker) for the node's lifetime."""
    repaired_bytes = Counter("objstore_repair_bytes", "Bytes of copies re-created here by repair",
                             registry=metrics.registry)
    repaired_objects = Counter("objstore_repair_objects", "Copies re-created here by repair and committed",
                               registry=metrics.registry)

    moved_bytes = Counter("objstore_rebalance_bytes", "Bytes of copies moved here by rebalancing",
                          registry=metrics.registry)

    def on_repaired(size: int) -> None:
        repaired_objects.inc()
        repaired_bytes.inc(size)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(repair_task(cfg, app[STORE], on_repaired, moved_bytes.inc))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ctx


class Drain:
    """Counts requests in flight so a stopping node can let them finish."""

    def __init__(self) -> None:
        self.inflight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """A request starts."""
        self.inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        """A request ended."""
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:  # noqa: ANN001
        self.enter()
        try:
            resp = await handler(request)
            if self.draining:
                resp.force_close()  # "Connection: close": the client reconnects elsewhere
            return resp
        finally:
            self.leave()

    async def drain(self, timeout: float) -> bool:
        """Mark draining and wait until no request is in flight; False on timeout."""
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False


DRAIN = web.AppKey("drain", Drain)


async def serve(cfg: StorageConfig, drain_timeout: float = 30.0) -> None:
    """Serve until SIGTERM/SIGINT, then stop cleanly.

    On a signal: stop accepting connections, let requests in flight finish (their bodies
    still arrive, their group commits complete; up to ``drain_timeout``), then close the
    app, which commits anything queued and closes every file.
    """
    ssl_context = server_context(cfg.tls_cert, cfg.tls_key)
    warning = clear_text_warning("a storage node", cfg.host, ssl_context, "object data")
    if warning:
        log.warning("%s", warning)
    app = create_app(cfg)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        listening = site(runner, cfg.host, cfg.port, ssl_context=ssl_context)
        await listening.start()
        log.info("storage node %s listening on %s:%d", cfg.node_id, cfg.host, cfg.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        drain = app[DRAIN]
        log.info("stopping: %d requests in flight", drain.inflight)
        await listening.stop()
        if not await drain.drain(drain_timeout):
            log.warning("stopping with %d requests still in flight", drain.inflight)
    finally:
        await runner.cleanup()
    log.info("storage node %s stopped", cfg.node_id)


def main(cfg: StorageConfig) -> None:
    """Run a storage node until SIGTERM/SIGINT (see :func:`serve`)."""
    os.umask(0o077)  # its files hold data only this user may read
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("storage node %s on %s:%d, data in %s", cfg.node_id, cfg.host, cfg.port, cfg.data_dir)
    asyncio.run(serve(cfg))
    freeze_for_exit()  # stopped cleanly: the exit need not collect the heap
