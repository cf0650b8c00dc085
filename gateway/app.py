"""The S3 gateway process: app factory and entry point.

``create_app(cfg)`` builds the aiohttp application: one catch-all route, the S3 middleware
(routing, auth, errors, metrics) dispatching to ``handle_<op>`` functions, and a cleanup
context that opens and closes the HTTP session, the metadata client and the topology.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import AsyncIterator, Mapping

import aiohttp
from aiohttp import web

from gateway.context import CTX_KEY, Clock, GatewayContext
from gateway.endpoints import OPERATIONS
from gateway.expect import continue_or_ignore
from gateway.handlers import batch_delete, bucket, copy, listing, multipart, object_delete, object_get, object_put
from gateway.handlers import upload_part
from gateway.handlers import acl, policy, tagging, versioning
from gateway.metrics import GatewayMetrics
from gateway.middleware import Handler, make_middleware
from gateway.raw_headers import install as install_raw_headers
from gateway.readiness import gateway_ready
from gateway.ring_epochs import hand_over_forever
from gateway.topology import Topology
from gateway.upload_cleanup import sweep_forever
from metadata.api.client import MetadataClient
from objstore.client_connector import keepalive_connector
from objstore.config import GatewayConfig
from objstore.hlc import HLC
from objstore.http_common import add_health_and_metrics
from objstore.internal_http import HttpPool
from objstore.internal_stream import StreamPool
from objstore.node.client import StorageClient, node_timeout
from objstore.process_exit import freeze_for_exit
from objstore.tls import clear_text_warning, client_context, server_context
from objstore.types import Credential

log = logging.getLogger(__name__)

OP_HANDLERS: Mapping[str, Handler] = {
    "ListBuckets": bucket.handle_list_buckets,
    "CreateBucket": bucket.handle_create_bucket,
    "HeadBucket": bucket.handle_head_bucket,
    "DeleteBucket": bucket.handle_delete_bucket,
    "GetBucketLocation": bucket.handle_get_bucket_location,
    "ListObjectsV2": listing.handle_list_objects_v2,
    "ListObjects": listing.handle_list_objects,
    "PutObject": object_put.handle_put_object,
    "GetObject": object_get.handle_get_object,
    "HeadObject": object_get.handle_head_object,
    "DeleteObject": object_delete.handle_delete_object,
    "DeleteObjects": batch_delete.handle_delete_objects,
    "CopyObject": copy.handle_copy_object,
    "GetBucketVersioning": versioning.handle_get_bucket_versioning,
    "PutBucketVersioning": versioning.handle_put_bucket_versioning,
    "ListObjectVersions": versioning.handle_list_object_versions,
    "GetObjectTagging": tagging.handle_get_object_tagging,
    "PutObjectTagging": tagging.handle_put_object_tagging,
    "DeleteObjectTagging": tagging.handle_delete_object_tagging,
    "GetBucketTagging": tagging.handle_get_bucket_tagging,
    "PutBucketTagging": tagging.handle_put_bucket_tagging,
    "DeleteBucketTagging": tagging.handle_delete_bucket_tagging,
    "GetBucketAcl": acl.handle_get_bucket_acl,
    "PutBucketAcl": acl.handle_put_bucket_acl,
    "GetObjectAcl": acl.handle_get_object_acl,
    "PutObjectAcl": acl.handle_put_object_acl,
    "CreateMultipartUpload": multipart.handle_create_multipart_upload,
    "UploadPart": upload_part.handle_upload_part,
    "UploadPartCopy": upload_part.handle_upload_part_copy,
    "CompleteMultipartUpload": multipart.handle_complete_multipart_upload,
    "AbortMultipartUpload": multipart.handle_abort_multipart_upload,
    "ListParts": multipart.handle_list_parts,
    "ListMultipartUploads": multipart.handle_list_multipart_uploads,
    "GetBucketPolicy": policy.handle_get_bucket_policy,
    "PutBucketPolicy": policy.handle_put_bucket_policy,
    "DeleteBucketPolicy": policy.handle_delete_bucket_policy,
}

# Headers up to 64 KiB reach the middleware, which answers oversized ones in S3 form.
HANDLER_ARGS = {"max_line_size": 65536, "max_field_size": 65536}


async def _bootstrap_credential(ctx: GatewayContext) -> None:
    cfg = ctx.cfg
    if not cfg.access_key:
        return
    for attempt in range(600):
        try:
            existing = await ctx.meta.get_credential(cfg.access_key)
            if existing is None or existing.secret_key != cfg.secret_key:
                await ctx.meta.put_credential(Credential(cfg.access_key, cfg.secret_key, owner=cfg.access_key,
                                                         display_name=cfg.access_key))
            return
        except Exception as exc:  # noqa: BLE001 - the metadata service may still be starting
            if attempt % 20 == 0:
                log.info("waiting for the metadata service to store the access key: %s", exc)
            await asyncio.sleep(0.1)


def create_app(cfg: GatewayConfig, clock: Clock = time.time) -> web.Application:
    """The gateway application for ``cfg``; ``clock`` is its wall clock (tests may pin it)."""
    cfg.validate()
    install_raw_headers()
    unhandled = set(OPERATIONS) ^ set(OP_HANDLERS)
    if unhandled:
        raise RuntimeError(f"operations routed and handled must match; they differ in {sorted(unhandled)}")
    app = web.Application(middlewares=[make_middleware(OP_HANDLERS)], client_max_size=1024**2)
    metrics = GatewayMetrics(cfg.bucket_metrics)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession(
            # Kept-alive connections to the nodes, without aiohttp's stale read timer (see the module).
            connector=keepalive_connector(limit=0, limit_per_host=256, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=3),
            trace_configs=[metrics.trace_config()],
        )
        internal_tls = client_context(cfg.tls_ca)
        pool = HttpPool(internal_tls, observer=metrics.call_observer())  # the small internal calls
        streams = StreamPool(internal_tls, observer=metrics.call_observer())  # streamed blob reads
        meta = MetadataClient(list(cfg.metadata), cfg.secret, session=session, client_id=cfg.gateway_id,
                              tls=internal_tls, deadline=cfg.metadata_timeout_seconds,
                              attempt_timeout=cfg.metadata_timeout_seconds / 2, pool=pool)
        storage = StorageClient(session, cfg.secret, node_timeout(cfg.storage_timeout_seconds), tls=internal_tls,
                                read_stall=cfg.read_stall_seconds, pool=pool, streams=streams)
        topology = Topology(meta.get_cluster_map, wait=meta.wait_cluster_map, suspect_seconds=cfg.suspect_seconds)
        ctx = GatewayContext(cfg, meta, storage, topology, HLC(cfg.gateway_id, clock), metrics, clock=clock)
        app[CTX_KEY] = ctx
        metrics.stale_seconds.set_function(ctx.stale_seconds)
        await _bootstrap_credential(ctx)
        await topology.start()
        sweeper = asyncio.create_task(sweep_forever(ctx), name="upload-sweeper")
        hand_over = asyncio.create_task(hand_over_forever(ctx, ctx.rings), name="manifest-hand-over")
        yield
        sweeper.cancel()
        hand_over.cancel()
        await asyncio.gather(sweeper, hand_over, return_exceptions=True)
        await topology.stop()
        await ctx.manifest_retries.close()
        await ctx.drain()
        await meta.close()
        await pool.close()
        await streams.close()
        await session.close()

    app.cleanup_ctx.append(resources)

    def health() -> dict:
        ctx = app[CTX_KEY]
        return {"role": "gateway", "id": cfg.gateway_id, "ring_epoch": ctx.topology.map.epoch,
                "storage_nodes": len(ctx.topology.map.nodes),
                "storage_addresses": ctx.topology.map.address_digests(),
                "manifest_rings_kept": len(ctx.rings.old())}  # old rings not yet handed over

    async def ready() -> tuple[bool, str]:  # it can serve when it reaches the metadata service and storage nodes
        return await gateway_ready(app[CTX_KEY]) if CTX_KEY in app else (False, "starting")

    add_health_and_metrics(app, metrics, health, ready, cfg.metrics_token)

    async def unrouted(request: web.Request) -> web.Response:  # the middleware dispatches
        raise web.HTTPNotFound()

    app.router.add_route("*", "/{tail:.*}", unrouted, expect_handler=continue_or_ignore)
    return app


def wall_clock(cfg: GatewayConfig) -> Clock:
    """The machine's clock, or (tests only, with fault injection) one ``clock_offset_seconds`` off."""
    offset = cfg.clock_offset_seconds if cfg.enable_fault_injection else 0.0
    if not offset:
        return time.time
    log.warning("fault injection: this gateway's clock runs %+.3f s off the machine's", offset)
    return lambda: time.time() + offset


def main(cfg: GatewayConfig) -> None:
    """Serve the gateway until SIGTERM or SIGINT."""
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s")
    ssl_context = server_context(cfg.tls_cert, cfg.tls_key)
    warning = clear_text_warning("S3", cfg.host, ssl_context,
                                 "requests and responses (object data, signed headers)")
    if warning:
        log.warning("%s", warning)
    app = create_app(cfg, wall_clock(cfg))
    web.run_app(
        app,
        host=cfg.host,
        port=cfg.port,
        ssl_context=ssl_context,
        handle_signals=True,
        print=None,
        access_log=None,
        handler_cancellation=True,
        keepalive_timeout=cfg.header_timeout_seconds,  # waiting for a request's headers, idle or not
        **HANDLER_ARGS,
    )
    freeze_for_exit()  # stopped cleanly: the exit need not collect the heap

