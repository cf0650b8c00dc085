"""The systems the metadata benchmark drives: objstore's metadata service and etcd.

Each offers the same small surface to the runner: ``write(key, version)`` commits one
record, ``read(key)`` reads it back linearizably, ``durability()`` returns the leader's
(entries, fsyncs) counters, ``pids`` the local server processes (for CPU figures).

objstore: one :class:`MetadataClient` shared by all concurrent workers, as a gateway shares
one; commands are ``PutObject`` of small version records into a fresh bucket; reads are
``get_object``. The leader is whichever node's ``/v1/status`` says so (with one node, that
node), asked node by node, so the same code reads the leader's counters of a Raft group.
etcd: ``/v3/kv/put`` and linearizable ``/v3/kv/range`` on the leader's client URL; the
value is the JSON of the same version record.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Sequence

import aiohttp
import psutil

from metadata.api.client import MetadataClient
from objstore.errors import BucketAlreadyOwnedByYou, ObjstoreError
from objstore.internal_http import HttpPool
from objstore.types import ObjectVersion
from ops.bench_metadata.etcd import COMMITTED, IS_LEADER, WAL_FSYNCS, EtcdClient
from ops.bench_metadata.figures import NoLeader, TopologyError, pick_leader

BENCH_OWNER = "bench-metadata"


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """User+system CPU seconds used so far by ``pids`` (None if none can be read)."""
    total, seen = 0.0, False
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        total += t.user + t.system
        seen = True
    return total if seen else None


class ObjstoreSystem:
    """objstore metadata node(s) at ``addresses``."""

    def __init__(self, name: str, addresses: Sequence[str], secret: str, pids: Sequence[int] = (),
                 concurrency_limit: int = 256) -> None:
        self.name = name
        self.addresses = list(addresses)
        self.secret = secret
        self.pids = list(pids)
        self.bucket = ""
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency_limit))
        # The commands and reads go as a gateway sends them: through the small keep-alive
        # client of objstore.internal_http (the calls the nodes' lean front does not serve,
        # /v1/status, through the aiohttp session).
        self._pool = HttpPool(max_idle=concurrency_limit)
        self.client = MetadataClient(self.addresses, secret, session=self._session, client_id="bench-metadata",
                                     pool=self._pool)
        self.leader: str | None = None

    async def node_statuses(self) -> dict[str, dict[str, Any] | None]:
        """Each node's own ``/v1/status`` (None for a node that does not answer)."""
        async def one(addr: str) -> dict[str, Any] | None:
            c = MetadataClient([addr], self.secret, session=self._session, client_id="bench-status",
                               deadline=3.0, attempt_timeout=2.0)
            try:
                return await c.status()
            except ObjstoreError:
                return None

        results = await asyncio.gather(*(one(a) for a in self.addresses))
        return dict(zip(self.addresses, results))

    async def wait_leader(self, timeout: float = 30.0) -> dict[str, Any]:
        """The leader's status once one node reports itself leader; raises TopologyError."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = await self.node_statuses()
            try:
                self.leader = pick_leader(statuses)
                return statuses[self.leader] or {}
            except NoLeader:
                if time.monotonic() > deadline:
                    raise NoLeader(f"no metadata node reported itself leader within {timeout:g}s") from None
            await asyncio.sleep(0.05)

    async def setup(self, bucket: str) -> None:
        """Wait for a leader (raises TopologyError), name the system after it, create the bench bucket."""
        leader = await self.wait_leader()
        mode = leader.get("replication", "single")
        n = len(self.addresses)
        self.name = f"objstore ({n} node{'s' if n > 1 else ''}, {mode})"
        self.bucket = bucket
        try:
            await self.client.create_bucket(bucket, BENCH_OWNER, "replica:3", time.time())
        except BucketAlreadyOwnedByYou:
            pass

    async def write(self, key: str, version: ObjectVersion) -> None:
        await self.client.put_object(version)

    async def read(self, key: str) -> None:
        await self.client.get_object(self.bucket, key)

    async def durability(self) -> tuple[str, int, int] | None:
        """(leader address, entries written, fsyncs) from the current leader's status."""
        statuses = await self.node_statuses()
        try:
            leader = pick_leader(statuses)
        except TopologyError:
            return None
        s = statuses[leader] or {}
        if "fsyncs" not in s or "entries_written" not in s:
            return None
        return leader, int(s["entries_written"]), int(s["fsyncs"])

    async def close(self) -> None:
        await self.client.close()
        await self._pool.close()
        await self._session.close()


class EtcdSystem:
    """An etcd cluster whose members' client addresses are ``addresses``."""

    def __init__(self, name: str, addresses: Sequence[str], pids: Sequence[int] = (),
                 concurrency_limit: int = 256) -> None:
        self.name = name
        self.addresses = list(addresses)
        self.pids = list(pids)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency_limit))
        self.members = {a: EtcdClient(self._session, a) for a in self.addresses}
        self.client: EtcdClient | None = None
        self.prefix = ""

    async def _leader(self) -> tuple[str, dict[str, float]] | None:
        for addr, member in self.members.items():
            try:
                m = await member.metrics()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                continue
            if m.get(IS_LEADER) == 1.0:
                return addr, m
        return None

    async def setup(self, prefix: str, timeout: float = 30.0) -> None:
        """Wait for a leader and send requests to it."""
        deadline = time.monotonic() + timeout
        while (found := await self._leader()) is None:
            if time.monotonic() > deadline:
                raise TopologyError("etcd elected no leader")
            await asyncio.sleep(0.05)
        self.client = self.members[found[0]]
        self.prefix = prefix

    async def write(self, key: str, version: ObjectVersion) -> None:
        assert self.client is not None
        await self.client.put(f"{self.prefix}/{key}", json.dumps(version.to_dict()).encode())

    async def read(self, key: str) -> None:
        assert self.client is not None
        if await self.client.get(f"{self.prefix}/{key}") is None:
            raise KeyError(key)

    async def durability(self) -> tuple[str, int, int] | None:
        found = await self._leader()
        if found is None or WAL_FSYNCS not in found[1] or COMMITTED not in found[1]:
            return None
        addr, m = found
        return addr, int(m[COMMITTED]), int(m[WAL_FSYNCS])

    async def close(self) -> None:
        await self._session.close()
