"""Everything a handler needs, built once per gateway process and stored on the app."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Coroutine

from aiohttp import web

from metadata.client import MetadataClient
from objstore.config import GatewayConfig
from objstore.hlc import HLC
from objstore.metrics import Metrics
from objstore.node.client import StorageClient
from objstore.types import Credential

from gateway.topology import Topology

CREDENTIAL_TTL = 5.0


@dataclass
class GatewayContext:
    cfg: GatewayConfig
    meta: MetadataClient
    storage: StorageClient
    topology: Topology
    hlc: HLC
    metrics: Metrics
    _creds: dict[str, tuple[float, Credential | None]] = field(default_factory=dict)
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` after the response (garbage collection of replaced blobs)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def credential(self, access_key: str) -> Credential | None:
        """The credential for an access key, cached for a few seconds."""
        hit = self._creds.get(access_key)
        now = time.monotonic()
        if hit and hit[0] > now:
            return hit[1]
        cred = await self.meta.get_credential(access_key)
        if cred is None and self.cfg.access_key and access_key == self.cfg.access_key:
            cred = Credential(self.cfg.access_key, self.cfg.secret_key, owner=self.cfg.access_key)
        self._creds[access_key] = (now + CREDENTIAL_TTL, cred)
        return cred


CTX_KEY: web.AppKey[GatewayContext] = web.AppKey("ctx", GatewayContext)
