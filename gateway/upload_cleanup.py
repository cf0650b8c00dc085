"""Ending multipart uploads without completing them: abort one, or the abandoned ones, and
delete their parts' blobs.

Abandoned uploads: every ``upload_sweep_seconds`` a gateway asks the metadata service for
uploads initiated more than ``upload_expiry_seconds`` ago (default 7 days, as S3's usual
lifecycle rule) and aborts them. Any number of gateways may sweep at once: an upload
aborted by another one is NoSuchUpload here and skipped. The clock is the context's
(``ctx.clock``).
"""
from __future__ import annotations

import asyncio
import logging

from gateway.context import GatewayContext
from gateway.datapath.garbage import collect_parts
from metadata.api.upload_client import UploadClient
from objstore.errors import NoSuchBucket, NoSuchUpload

log = logging.getLogger(__name__)

BATCH = 1000


async def abort_upload(ctx: GatewayContext, bucket: str, key: str, upload_id: str) -> int:
    """Abort an upload; its parts' blobs are deleted after the caller answers. Returns the
    number of parts. Raises NoSuchUpload."""
    garbage = await UploadClient(ctx.meta).abort(bucket, key, upload_id)
    ctx.uploads.forget(bucket, key, upload_id)
    if garbage.parts:
        ctx.background(collect_parts(ctx.storage, ctx.topology, garbage.parts))
    return len(garbage.parts)


async def abort_expired(ctx: GatewayContext, max_age: float) -> int:
    """Abort every upload initiated more than ``max_age`` seconds ago; returns how many."""
    clock = ctx.clock
    aborted = 0
    while True:
        stale = await UploadClient(ctx.meta).stale(clock() - max_age, BATCH)
        done_here = 0
        for u in stale:
            try:
                await abort_upload(ctx, u.bucket, u.key, u.upload_id)
                done_here += 1
            except (NoSuchUpload, NoSuchBucket):
                continue
            log.info("aborted multipart upload %s of %s/%s, initiated %.0f s ago",
                     u.upload_id, u.bucket, u.key, clock() - u.initiated)
        aborted += done_here
        if len(stale) < BATCH or done_here == 0:
            return aborted


async def sweep_forever(ctx: GatewayContext) -> None:
    """Run :func:`abort_expired` every ``upload_sweep_seconds`` until cancelled."""
    while True:
        await asyncio.sleep(ctx.cfg.upload_sweep_seconds)
        try:
            await abort_expired(ctx, ctx.cfg.upload_expiry_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the metadata service may be away; next round
            log.warning("multipart upload sweep failed: %s", exc)
