"""A minimal asyncio client of etcd's v3 JSON gateway, for the comparison benchmark.

``put`` is ``POST /v3/kv/put`` and ``get`` is ``POST /v3/kv/range`` (linearizable: etcd's
default, ``serializable`` false), keys and values base64 in JSON bodies, as etcd's
gRPC-gateway expects. One aiohttp session is shared by concurrent callers, as the
objstore side shares one MetadataClient. Leader and fsync figures come from ``/metrics``.
"""
from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp

from ops.bench_metadata.figures import prometheus_values

WAL_FSYNCS = "etcd_disk_wal_fsync_duration_seconds_count"
COMMITTED = "etcd_server_proposals_committed_total"
IS_LEADER = "etcd_server_is_leader"


class EtcdError(Exception):
    """etcd answered with an error."""


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class EtcdClient:
    """Talks to the etcd member at ``address`` (host:port) over ``session``."""

    def __init__(self, session: aiohttp.ClientSession, address: str) -> None:
        self.session = session
        self.base = f"http://{address}"

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.base + path, data=json.dumps(body),
                                     headers={"Content-Type": "application/json"}) as resp:
            raw = await resp.read()
        if resp.status != 200:
            raise EtcdError(f"{path}: HTTP {resp.status}: {raw[:200]!r}")
        return json.loads(raw)

    async def put(self, key: str, value: bytes) -> int:
        """Store ``value`` at ``key``; returns the revision it was committed at."""
        d = await self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(d.get("header", {}).get("revision", 0))

    async def get(self, key: str) -> bytes | None:
        """The value at ``key`` by a linearizable read, or None."""
        d = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = d.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    async def metrics(self) -> dict[str, float]:
        """This member's leader flag, WAL fsync count and committed proposals."""
        async with self.session.get(self.base + "/metrics") as resp:
            text = await resp.text()
        return prometheus_values(text, (WAL_FSYNCS, COMMITTED, IS_LEADER))
