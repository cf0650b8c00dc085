"""Everything a handler needs, built once per gateway process and stored on the app.

The gateway's sources of nondeterminism are injected here: ``clock`` (wall-clock unix
seconds: object and upload times, SigV4 request-time checks) and ``request_ids`` (the one
generator of request ids). Nothing under ``gateway/`` reads ``time.time()`` or makes a
request id any other way.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine

from aiohttp import web

from metadata.api.client import MetadataClient
from metadata.api.upload_client import UploadClient
from objstore.config import GatewayConfig
from objstore.hlc import HLC
from objstore.node.client import StorageClient
from objstore.errors import ServiceUnavailable
from objstore.types import Bucket, Credential

from gateway.credential_cache import CredentialCache
from gateway.outage import Outage
from gateway.metrics import GatewayMetrics
from gateway.datapath.damage import DamageReporter
from gateway.datapath.blob_lanes import BlobLanes
from gateway.datapath.manifest_lanes import ManifestLanes
from gateway.datapath.manifest_retry import ManifestRetries
from gateway.ring_epochs import RingEpochs
from gateway.topology import Topology
from gateway.upload_cache import UploadCache

BUCKET_TTL = 2.0  # cached bucket records serve only immutable fields (owner, policy)

Clock = Callable[[], float]
"""A wall clock: unix seconds (``time.time`` in production)."""


def new_request_id() -> str:
    """A fresh request id: 16 upper-case hex digits, 64 random bits (from :mod:`random`,
    seeded from the system's random source and reseeded in a forked child: a request id
    only correlates log lines, so it costs no system call)."""
    return f"{random.getrandbits(64):016X}"


@dataclass
class GatewayContext:
    cfg: GatewayConfig
    meta: MetadataClient
    storage: StorageClient
    topology: Topology
    hlc: HLC
    metrics: GatewayMetrics
    clock: Clock = time.time
    request_ids: Callable[[], str] = new_request_id
    _creds: CredentialCache = field(init=False)
    _tasks: set[asyncio.Task] = field(default_factory=set)
    _buckets: dict[str, tuple[float, Bucket]] = field(default_factory=dict)
    _bucket_fetches: dict[str, asyncio.Future[Bucket]] = field(default_factory=dict)  # in flight, by name
    _bucket_forgets: int = 0  # forget_bucket calls so far: a fetch begun before one is not cached
    damage: DamageReporter = field(init=False)  # read repair: copies reads failed over from
    rings: RingEpochs = field(init=False)  # the rings whose owners hold manifests (current + not handed over)
    manifest_lanes: ManifestLanes = field(init=False)  # manifest writes, coalesced per node
    manifest_retries: ManifestRetries = field(init=False)  # failed manifest stores, sent again
    blob_lanes: BlobLanes = field(init=False)  # small blob writes, coalesced per node
    uploads: UploadCache = field(init=False)  # multipart upload records for UploadPart (immutable fields)

    stale_age: float = 0.0  # seconds past expiry of the last bucket record served stale (0: fresh)
    outage: Outage = field(default_factory=Outage)  # the metadata service just failed to answer
    newest_commit: int = 0  # the highest commit index this gateway's writes were told of

    def __post_init__(self) -> None:
        self._creds = CredentialCache(self._lookup_credential, stale_window=self.cfg.stale_window_seconds,
                                      outage=self.outage)
        self.damage = DamageReporter(self.meta, self.background)
        self.rings = RingEpochs(self.topology)
        self.manifest_lanes = ManifestLanes(self.storage, self.background)
        self.manifest_retries = ManifestRetries()
        self.blob_lanes = BlobLanes(self.storage, self.background)
        self.uploads = UploadCache(UploadClient(self.meta).get)

    async def bucket(self, name: str) -> Bucket:
        """The bucket record, cached briefly; raises NoSuchBucket.

        Only a bucket's immutable fields may be used from the cache. A PUT that used a
        stale record is still refused by the metadata service if the bucket changed owner.
        """
        hit = self._buckets.get(name)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        if hit and self.outage.active() and now - hit[0] <= self.cfg.stale_window_seconds:
            self.stale_age = now - hit[0]
            return hit[1]
        forgets = self._bucket_forgets
        try:
            b = await self._fetch_bucket(name)
        except ServiceUnavailable:
            # No metadata majority: the last record serves for the stale window (see
            # GatewayConfig.stale_window_seconds), so quorum/one reads keep working.
            if hit is None or now - hit[0] > self.cfg.stale_window_seconds:
                raise
            self.stale_age = now - hit[0]
            self.outage.note()
            return hit[1]
        if forgets != self._bucket_forgets:
            # This gateway changed a bucket while the record was being fetched: the record
            # may predate the change, so it answers this request only (begun before it).
            return b
        if len(self._buckets) > 10000:
            self._buckets.clear()
        self._buckets[name] = (now + BUCKET_TTL, b)
        self.stale_age = 0.0
        return b

    async def _fetch_bucket(self, name: str) -> Bucket:
        """The bucket record from the metadata service; requests that miss the cache while
        a fetch of the same bucket is in flight share it (when the record expires under
        load, every request in flight would otherwise fetch it: as many calls to the
        leader as the GETs they serve). A caller that is cancelled does not cancel it."""
        fetch = self._bucket_fetches.get(name)
        if fetch is None:
            fetch = self._bucket_fetches[name] = asyncio.ensure_future(self.meta.get_bucket(name))

            def done(f: asyncio.Future[Bucket]) -> None:
                if self._bucket_fetches.get(name) is f:
                    del self._bucket_fetches[name]
                if not f.cancelled():
                    f.exception()  # retrieved: each waiter re-raises it, nobody need log it

            fetch.add_done_callback(done)
        return await asyncio.shield(fetch)

    def require_metadata(self) -> None:
        """Raise ServiceUnavailable at once while a metadata outage is recent (see
        :mod:`gateway.outage`): strong reads and writes then fail fast instead of each
        waiting for the metadata deadline."""
        if self.outage.active():
            raise ServiceUnavailable("The metadata service has no majority; only quorum and one reads are served.")

    def stale_seconds(self) -> float:
        """How far past expiry the oldest cached record in use is (0: all fresh)."""
        return max(self.stale_age, self._creds.stale_age)

    def forget_bucket(self, name: str) -> None:
        """Drop the cached record, and any fetch in flight (it may predate a change the
        caller made): the next request fetches it anew, and no fetch begun before this
        call caches what it read."""
        self._bucket_forgets += 1
        self._buckets.pop(name, None)
        self._bucket_fetches.pop(name, None)

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` after the response (garbage collection of replaced blobs)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def credential(self, access_key: str) -> Credential | None:
        """The credential for an access key, cached for a few seconds (see CredentialCache).

        Raises InvalidAccessKeyId for a key no credential can have, SlowDown when too many
        unknown keys are being presented.
        """
        return await self._creds.get(access_key)

    async def _lookup_credential(self, access_key: str) -> Credential | None:
        return await self.meta.get_credential(access_key)  # the configured key too: deleting it revokes it


CTX_KEY: web.AppKey[GatewayContext] = web.AppKey("ctx", GatewayContext)
