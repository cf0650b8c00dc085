"""The metadata node's HTTP API (JSON over HTTP, cluster-secret auth) and its process entry.

Routes (all but /health and /metrics need ``X-Objstore-Auth``; errors are the objstore
error JSON ``{"code", "message", "extra"}`` with the error's HTTP status):

    POST /v1/nodes        {"node": NodeInfo}           -> {"cluster_map": ClusterMap}
    POST /v1/command      a command (metadata.api.commands) -> {"value": result}
    POST /v1/commands     {"commands": [command]} -> {"results": [...]}  (metadata.command_batch_http)
    GET  /v1/bucket       ?name=                        -> {"bucket": Bucket}
    GET  /v1/buckets      [?owner=]                     -> {"buckets": [Bucket]}
    GET  /v1/object       ?bucket=&key=[&version_id=]   -> ObjectLookup {"version", "versioning"}
    POST /v1/objects      {"lookups": [{bucket, key, version_id}]} -> {"results": [...]}  (metadata.lookup_batch_http)
    GET  /v1/list         ?bucket=[&prefix=&delimiter=&start_after=&max_keys=][&local=1] -> ListResult
                          (local=1: any member answers from its own state; see _listing;
                          form=rows: the compact form of metadata.fsm.page_rows instead)
    GET  /v1/versions     ?bucket=[&prefix=&delimiter=&key_marker=&version_id_marker=&max_keys=]
                                                        -> VersionListResult
    GET  /v1/cluster      [?wait_epoch=E&timeout=S]     -> {"cluster_map": ClusterMap}
                          (a long poll with wait_epoch: see metadata.node_health)
    POST /v1/nodes/heartbeat, GET /v1/nodes/health      (metadata.node_health)
    GET  /v1/credential   ?access_key=                  -> {"credential": Credential | null}
    GET  /v1/credentials                                -> {"credentials": [Credential]}
    GET  /v1/status                                     -> node, term, indexes, counts
    GET  /v1/upload, /v1/upload/parts, /v1/uploads, /v1/uploads/stale   (metadata.upload_http)
    POST /v1/gc/check                                                   (metadata.gc_http)
    GET /v1/nodes, POST /v1/nodes/change|weight, GET /v1/nodes/ok-to-stop  (metadata.membership_http)
    /raft/*, /v1/raft/members, /debug/partition                         (metadata.replication.http)

Every node is a Raft member (:mod:`metadata.replication`): writes and reads are served by
the leader; other members answer 503 NotLeader with ``extra.leader`` = the leader's
"host:port". With neither ``peers`` nor ``join`` the node is a group whose only voter is
itself (its data dir from before Raft, if any, is migrated on start:
:mod:`metadata.storage.migrate`).

With ``--enable-fault-injection`` (tests only) a read carrying the header
``X-Objstore-Debug-Stale-Read: 1`` is served from the node's local state without ReadIndex:
a deliberately broken read path for fault tests (see ``_read``).

Keys and names travel as percent-encoded query values or in JSON bodies, never in the
path, so any UTF-8 string round-trips. Handlers only call the :class:`Replicator`.
"""
from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import time
from typing import Any, AsyncIterator, Callable, Iterator, TypeVar

from aiohttp import web
from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily

from metadata import command_batch_http, gc_http, hot_routes, lookup_batch_http, membership_http, node_health, upload_http
from metadata import heap, latency_trace
from metadata.api import commands as c
from metadata.api.commands import command_from_dict
from metadata.api.page_rows import ROWS_FORM
from metadata.fsm.machine import MetadataFSM
from metadata.join import ask_to_join, self_address
from metadata.liveness import LivenessSettings
from metadata.metrics import MetadataMetrics
from metadata.repair import http as repair_http
from metadata.repair.service import RebalanceCollector, RepairService
from metadata.replication import http as raft_http
from metadata.replication.driver import RaftReplicator, RaftSettings, open_one_voter, parse_peers
from metadata.replication.replicator import Replicator
from objstore.config import MetadataConfig
from objstore.errors import InvalidArgument
from objstore.http_common import InternalCalls, add_health_and_metrics
from objstore.metrics import Metrics
from objstore.process_exit import freeze_for_exit
from objstore.tls import clear_text_warning, client_context, server_context

log = logging.getLogger(__name__)

MAX_BODY = 32 * 1024 * 1024
REPLICATOR = web.AppKey("replicator", Replicator)
CONFIG = web.AppKey("config", MetadataConfig)
METRICS = web.AppKey("metrics", Metrics)
REPAIR = web.AppKey("repair", RepairService)
STALE_READ_HEADER = "X-Objstore-Debug-Stale-Read"  # honoured only with fault injection (see _read)
T = TypeVar("T")


def _rep(request: web.Request) -> Replicator:
    return request.app[REPLICATOR]


async def _read(request: web.Request, fn: Callable[[MetadataFSM], T]) -> T:
    """A strong read through the replicator (ReadIndex at the leader).

    Test-only broken read path: on a node started with ``--enable-fault-injection``, a
    request carrying ``X-Objstore-Debug-Stale-Read: 1`` is answered from this node's local
    state at once, whatever its role (no ReadIndex, no leader check), so a follower or a
    deposed leader may answer with stale data. Fault tests use it to show that the
    linearizability checker catches such reads; without the flag the header is ignored."""
    if request.app[CONFIG].enable_fault_injection and request.headers.get(STALE_READ_HEADER) == "1":
        return fn(_rep(request).fsm)  # type: ignore[attr-defined]
    return await _rep(request).read(fn)


def _q(request: web.Request, name: str, default: str | None = None, required: bool = False) -> str | None:
    value = request.query.get(name)
    if value is None:
        if required:
            raise InvalidArgument(f"missing query parameter {name!r}")
        return default
    return value


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise InvalidArgument(f"request body is not JSON: {exc}") from None


# --- writes -----------------------------------------------------------------------------------


async def post_nodes(request: web.Request) -> web.Response:
    node = node_health.node_from_body(await _json_body(request))
    cmap = await _rep(request).read(lambda f: f.cluster_map())
    record = node_health.registration(cmap.node(node.node_id), node, request.app[CONFIG].auto_add)
    if record is not None:
        cmap = (await _rep(request).propose(c.RegisterNode(record))).result(c.RegisterNode)
    return web.json_response({"cluster_map": cmap.to_dict()})


async def post_command(request: web.Request) -> web.Response:
    latency_trace.event("H0")
    cmd = command_batch_http.prepare(command_from_dict(await _json_body(request)), request.app[CONFIG], time.time())
    outcome = await _rep(request).propose(cmd)
    outcome.raise_for_error()
    resp = web.json_response({"value": outcome.value})
    latency_trace.event("H1")
    return resp


# --- reads ------------------------------------------------------------------------------------


async def get_bucket(request: web.Request) -> web.Response:
    name = _q(request, "name", required=True)
    bucket = await _read(request, lambda f: f.get_bucket(name))
    return web.json_response({"bucket": bucket.to_dict()})


async def get_buckets(request: web.Request) -> web.Response:
    owner = _q(request, "owner")
    buckets = await _read(request, lambda f: f.list_buckets(owner))
    return web.json_response({"buckets": [b.to_dict() for b in buckets]})


async def get_object(request: web.Request) -> web.Response:
    bucket, key = _q(request, "bucket", required=True), _q(request, "key", required=True)
    version_id = _q(request, "version_id")
    found = await _read(request, lambda f: f.lookup_object(bucket, key, version_id))
    return web.json_response(found.to_dict())


def _max_keys(request: web.Request) -> int:
    try:
        max_keys = int(_q(request, "max_keys", "1000"))  # type: ignore[arg-type]
    except ValueError:
        raise InvalidArgument("max_keys must be an integer") from None
    if max_keys < 0:
        raise InvalidArgument("max_keys must not be negative")
    return max_keys


LOCAL_READ = "local"  # ?local=1 on a listing: this node's state at once, whatever its role


# Listing pages are the largest answers (1000 entries): no spaces after separators.
_compact = functools.partial(json.dumps, separators=(",", ":"))


async def _listing(request: web.Request, fn: Callable[[MetadataFSM], dict[str, Any]]) -> web.Response:
    """A listing (``fn`` gives its wire form): strong (:func:`_read`), or with ``?local=1`` (a
    read option, for ``one`` consistency) from this node's applied state at once, follower
    or not, possibly stale: the answer then carries ``local``: the node, its applied and its
    known commit index."""
    if request.query.get(LOCAL_READ) == "1":
        rep = _rep(request)
        st = rep.status()
        body = fn(rep.fsm)  # type: ignore[attr-defined]
        body["local"] = {"node_id": st["node_id"], "role": st["role"], "applied_index": st["applied_index"],
                         "commit_index": st["commit_index"]}
        return web.json_response(body, dumps=_compact)
    return web.json_response(await _read(request, fn), dumps=_compact)


async def _rows_listing(request: web.Request, fn: Callable[[MetadataFSM, dict[str, Any] | None], str]) -> web.Response:
    """:func:`_listing` for a page written as JSON text by ``fn`` (given the ``local`` field
    of a ``?local=1`` read, else None)."""
    if request.query.get(LOCAL_READ) == "1":
        rep = _rep(request)
        st = rep.status()
        local = {"node_id": st["node_id"], "role": st["role"], "applied_index": st["applied_index"],
                 "commit_index": st["commit_index"]}
        text = fn(rep.fsm, local)  # type: ignore[attr-defined]
    else:
        text = await _read(request, lambda f: fn(f, None))
    return web.Response(body=text.encode(), content_type="application/json")


async def get_versions(request: web.Request) -> web.Response:
    bucket = _q(request, "bucket", required=True)
    prefix = _q(request, "prefix", "")
    delimiter = _q(request, "delimiter") or None
    key_marker, vid_marker = _q(request, "key_marker"), _q(request, "version_id_marker")
    max_keys = _max_keys(request)
    return await _listing(request,
        lambda f: f.list_object_versions(bucket, prefix, delimiter, key_marker, vid_marker, max_keys).to_dict())


async def get_list(request: web.Request) -> web.Response:
    bucket = _q(request, "bucket", required=True)
    prefix = _q(request, "prefix", "")
    delimiter = _q(request, "delimiter") or None
    start_after = _q(request, "start_after")
    max_keys = _max_keys(request)
    if request.query.get("form") == ROWS_FORM:  # the compact form (metadata.fsm.page_rows)
        return await _rows_listing(
            request, lambda f, local: f.list_objects_rows(bucket, prefix, delimiter, start_after, max_keys, local))
    return await _listing(request, lambda f: f.list_objects_dict(bucket, prefix, delimiter, start_after, max_keys))


async def get_cluster(request: web.Request) -> web.Response:
    cmap = await _read(request, lambda f: f.cluster_map())
    wait = node_health.wait_query(request.query)
    if wait is not None and cmap.epoch <= wait[0]:
        if await request.app[node_health.EPOCH_WATCH].wait_above(*wait):
            cmap = await _read(request, lambda f: f.cluster_map())
    return web.json_response({"cluster_map": cmap.to_dict()})


async def get_credential(request: web.Request) -> web.Response:
    ak = _q(request, "access_key", required=True)
    cred = await _read(request, lambda f: f.get_credential(ak))
    return web.json_response({"credential": cred.to_dict() if cred else None})


async def get_credentials(request: web.Request) -> web.Response:
    creds = await _read(request, lambda f: f.list_credentials())
    return web.json_response({"credentials": [x.to_dict() for x in creds]})


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(_rep(request).status())


# --- the application --------------------------------------------------------------------------


def _op_of(request: web.Request) -> str:
    route = request.match_info.route
    return route.name or "unknown"


def _register_gauges(metrics: Metrics, rep: Replicator) -> None:
    def gauge(name: str, doc: str, field: str) -> None:
        g = Gauge(f"objstore_metadata_{name}", doc, registry=metrics.registry)
        g.set_function(lambda: float(rep.status().get(field, 0)))

    gauge("term", "Current term", "term")
    gauge("commit_index", "Last committed log index", "commit_index")
    gauge("applied_index", "Last applied log index", "applied_index")
    gauge("log_bytes", "Bytes in log segment files", "log_bytes")
    gauge("log_fsyncs", "Log write batches made durable (one fsync each)", "fsyncs")
    gauge("log_entries_written", "Log entries made durable", "entries_written")
    gauge("objects", "Objects in the index", "objects")
    gauge("raft_snapshots_installed", "Snapshots received from the leader and installed", "snapshots_installed")
    gauge("raft_snapshots_sent", "Snapshots streamed to followers", "snapshots_sent")
    gauge("raft_leader_changes", "Times this node saw the leader change", "leader_changes")


class _LeaderHealthCollector:
    """On the leader only (so a sum over members counts once): the cluster's versions and
    bytes below policy (derived from the replicated records) and each storage node's
    heartbeat age (the leader's liveness soft state)."""

    def __init__(self, rep: Replicator, liveness: node_health.LivenessService) -> None:
        self._rep = rep
        self._liveness = liveness

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._rep.is_leader():
            return
        status = self._rep.status()
        for field, doc in (("objects_below_policy", "Object versions with fewer copies than their policy wants"),
                           ("bytes_below_policy", "Bytes of blobs with fewer copies than their policy wants")):
            yield GaugeMetricFamily(f"objstore_cluster_{field}", doc, value=float(status.get(field, 0)))
        ages = GaugeMetricFamily("objstore_node_heartbeat_age_seconds",
                                 "Seconds since the leader last heard from each storage node", labels=["node"])
        for node_id, age in self._liveness.monitor.heartbeat_ages(self._liveness.clock()).items():
            ages.add_metric([node_id], age)
        yield ages


def create_app(cfg: MetadataConfig) -> web.Application:
    """The metadata node's aiohttp application; its replicator opens on startup."""
    metrics = Metrics("metadata")
    # Raft batches carry up to MAX_BATCH_BYTES of entries (base64 in JSON): allow them.
    calls = InternalCalls(cfg.secret, metrics, _op_of)
    app = web.Application(middlewares=calls.middlewares(), client_max_size=MAX_BODY)
    app[CONFIG] = cfg
    app[METRICS] = metrics

    async def replicator_ctx(app: web.Application) -> AsyncIterator[None]:
        rep = await open_raft(cfg)
        # The restored index is long-lived: keep the cyclic collector from rescanning it
        # (metadata.heap: a full collection over a million records pauses the loop ~240 ms).
        log.info("metadata node %s: heap settled in %.3f s after opening", cfg.node_id, heap.settle())
        app[REPLICATOR] = rep
        app[REPAIR] = RepairService(rep, cfg.secret, client_context(cfg.tls_ca),
                                    free_bytes=app[node_health.LIVENESS].monitor.free_bytes)
        _register_gauges(metrics, rep)
        if isinstance(rep, RaftReplicator):
            MetadataMetrics(metrics, rep)
        metrics.registry.register(_LeaderHealthCollector(rep, app[node_health.LIVENESS]))
        metrics.registry.register(RebalanceCollector(rep, app[REPAIR]))
        yield
        await app[REPAIR].close()
        await rep.close()

    app.cleanup_ctx.append(replicator_ctx)

    async def ready() -> tuple[bool, str]:  # it can serve once it knows a leader
        rep = app.get(REPLICATOR)
        leader = rep.status().get("leader") if rep is not None else None
        return (True, "") if leader else (False, "no metadata leader known")

    add_health_and_metrics(app, metrics, lambda: {"role": "metadata", "node_id": cfg.node_id}, ready,
                           cfg.metrics_token)
    r = app.router
    r.add_post("/v1/nodes", post_nodes, name="register_node")
    r.add_post("/v1/command", post_command, name="command")
    command_batch_http.add_routes(app, _rep, lambda request: request.app[CONFIG])
    r.add_get("/v1/bucket", get_bucket, name="get_bucket")
    r.add_get("/v1/buckets", get_buckets, name="list_buckets")
    r.add_get("/v1/object", get_object, name="get_object")
    lookup_batch_http.add_routes(app, _read)
    r.add_get("/v1/list", get_list, name="list_objects")
    r.add_get("/v1/versions", get_versions, name="list_object_versions")
    r.add_get("/v1/cluster", get_cluster, name="get_cluster")
    r.add_get("/v1/credential", get_credential, name="get_credential")
    r.add_get("/v1/credentials", get_credentials, name="list_credentials")
    r.add_get("/v1/status", get_status, name="status")
    upload_http.add_routes(app, _rep)
    node_health.add_liveness(app, lambda: app[REPLICATOR], LivenessSettings(cfg.node_timeout, cfg.down_after))
    app[node_health.LIVENESS].auto_add = cfg.auto_add
    repair_http.add_routes(app, lambda request: request.app[REPAIR])
    gc_http.add_routes(app, _rep, cfg.gc_grace)
    membership_http.add_routes(app, _rep, cfg.default_policy)
    raft_http.add_routes(app, _rep, cfg.enable_fault_injection)
    hot_routes.add_hot_routes(app, calls)
    return app


async def open_raft(cfg: MetadataConfig) -> Replicator:
    """The Raft replicator of this node (bootstrapping from ``peers`` unless ``join``;
    without either, or with only itself as peer, a group whose only voter is this node,
    returned once it leads)."""
    peers = parse_peers(cfg.peers)
    address = peers.get(cfg.node_id) or f"{cfg.host}:{cfg.port}"
    settings = RaftSettings(
        tick_seconds=cfg.tick_ms / 1000, election_ticks=cfg.election_ticks, heartbeat_ticks=cfg.heartbeat_ticks,
        snapshot_every=cfg.snapshot_every, segment_bytes=cfg.log_segment_bytes, tls_ca=cfg.tls_ca,
        lease_reads=cfg.lease_reads,
    )
    if not cfg.join and set(peers) <= {cfg.node_id}:  # no peers, or only itself (the launcher's single node)
        return await open_one_voter(cfg.node_id, cfg.data_dir, address, cfg.secret, settings)
    return await RaftReplicator.open(cfg.node_id, cfg.data_dir, cfg.secret, peers, cfg.join, address, settings)


async def serve(cfg: MetadataConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set, or until SIGTERM/SIGINT; then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ssl_context = server_context(cfg.tls_cert, cfg.tls_key)
    warning = clear_text_warning("the metadata API and Raft", cfg.host, ssl_context,
                                 "S3 secret keys, metadata and Raft messages")
    if warning:
        log.warning("%s", warning)
    # In-flight requests get 2 s on shutdown (as a storage node's): a gateway's long poll of
    # the cluster map may otherwise hold the stop for up to its 10 s.
    runner = web.AppRunner(create_app(cfg), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = hot_routes.site(runner, cfg.host, cfg.port, ssl_context=ssl_context)
        await site.start()
        addrs = [f"{s[0]}:{s[1]}" for s in runner.addresses]
        print(f"metadata node {cfg.node_id} listening on {', '.join(addrs)}", flush=True)
        join_address = self_address(cfg)
        joining = asyncio.create_task(ask_to_join(cfg, join_address)) if join_address else None
        await stop.wait()
        if joining is not None:
            joining.cancel()
            await asyncio.gather(joining, return_exceptions=True)
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(cfg: MetadataConfig) -> None:
    """Run one metadata node in this process until SIGTERM/SIGINT."""
    os.umask(0o077)  # its log and snapshots hold S3 secret keys
    asyncio.run(serve(cfg))
    freeze_for_exit()  # stopped cleanly: the exit need not collect the heap
