"""Small blob writes to one storage node, coalesced while a blob write to it is in flight.

Under concurrency many small PUTs write their replicas (or shards) to the same nodes at
once, and a node spends about the same CPU on a call whatever it carries. Each node has
one lane (:class:`objstore.coalescing.Lanes`, as the manifest writes): a blob that finds no
blob write in flight to its node goes at once (after the lane's gather ticks), alone, as
an ordinary ``PUT /blobs/{vid}/{shard}``; those that come while one is in flight wait for
it and then go together in one ``PUT /blobs/batch`` (:mod:`objstore.node.blob_batch`),
which the node stores under the same group commit (one write and fsync) as single writes.

Only blobs held in memory are coalesced (whole bodies of at most :data:`MAX_ITEM_BYTES`);
streamed writes go as before.

Invariants:
- A caller is answered success only once the call carrying its blob succeeded for it
  (the node answers each blob once durable, ``{"size", "xxh64"}`` as for a single write);
  a blob the node refused (507 InsufficientStorage, ...) fails with that error alone; a
  failed call fails every blob it carried with its error, as a failed single write would.
- Bounded: at most :data:`MAX_BATCH` blobs and about :data:`MAX_BATCH_BYTES` per call (a
  request stays below the node's 1 MiB body limit), at most :data:`MAX_WAITING` blobs
  waiting per node (more go alone, at once). An idle lane holds nothing.
- Bounded in time as a single write is: ``timeout`` is the storage client's own bound on
  a call (``--storage-timeout``), and a blob is answered within it of coming. Blobs wait
  only behind a call that has run less than ``stall`` (:data:`STALL`); behind one that
  has run longer (a node that hangs, or a slow one) they go in a call of their own at
  once, given what is left of their ``timeout``. So a slow node that answers every call
  within the storage timeout still stores every blob, as it would single writes, and one
  that hangs fails each blob when a single write to it would have failed.
- A node without the batch route (older: 404) gets single calls; the route is tried again
  :data:`objstore.coalescing.RETRY_ROUTE_AFTER` seconds later.
- ``OBJSTORE_BLOB_BATCH=0`` in the gateway's environment turns coalescing off.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Callable, Coroutine

from objstore.coalescing import GATHER_TICKS, Lanes, MissingRoutes
from objstore.errors import IncompleteBody, ObjstoreError, ServiceUnavailable
from objstore.node.blob_batch import MAX_BODY, BlobWrite
from objstore.node.client import StorageClient

ENV = "OBJSTORE_BLOB_BATCH"
MAX_ITEM_BYTES = 256 * 1024  # larger blobs are streamed (gateway.datapath.replicate.INLINE_SIZE)
MAX_BATCH = 64  # blobs in one call (the node takes up to 256)
MAX_BATCH_BYTES = MAX_BODY - 64 * 1024  # weighed bytes in one call: blobs and their JSON head
MAX_WAITING = 1024  # blobs waiting for one node; more go alone
STALL = 5.0  # seconds a blob call may run before those waiting behind it go without it


def enabled() -> bool:
    """Whether this process coalesces blob writes (``OBJSTORE_BLOB_BATCH`` is not "0")."""
    return os.environ.get(ENV, "1") != "0"


def weight(blob: BlobWrite) -> int:
    """A bound on what ``blob`` adds to a batch request: its bytes and its JSON entry (a key
    of n characters takes at most 6n bytes escaped; the names and numbers well under 200)."""
    return len(blob.data) + 200 + len(blob.version_id) + len(blob.bucket) + len(blob.policy) + 6 * len(blob.key)


class BlobLanes(Lanes[str, BlobWrite, dict]):
    """``spawn`` runs a coroutine in the background (the gateway's ``background``);
    ``clock`` tells the time waiting is measured by (monotonic seconds)."""

    def __init__(self, storage: StorageClient, spawn: Callable[[Coroutine[Any, Any, Any]], None], *,
                 max_batch: int = MAX_BATCH, max_batch_bytes: int = MAX_BATCH_BYTES, max_waiting: int = MAX_WAITING,
                 timeout: float | None = None, stall: float = STALL, clock: Callable[[], float] = time.monotonic,
                 gather_ticks: int = GATHER_TICKS, coalesce: bool | None = None) -> None:
        """``timeout``: the storage client's bound on one call (default: its own)."""
        super().__init__(self._put_one, self._put_many, spawn, max_batch=max_batch, max_waiting=max_waiting,
                         timeout=storage.call_seconds if timeout is None else timeout, stall=stall, clock=clock,
                         describe=lambda address: f"blob write to {address}",
                         gather_ticks=gather_ticks, weight=weight, max_weight=max_batch_bytes,
                         cancel_abandoned=True)  # a write whose PUT went away holds no connection
        self._storage = storage
        self.coalesce = enabled() if coalesce is None else coalesce
        self._missing: MissingRoutes[str] = MissingRoutes(clock)  # nodes that lacked the batch route
        self.blobs = 0  # blobs sent through the lanes (blobs / calls shows the coalescing)

    async def put(self, address: str, version_id: str, shard: int, bucket: str, key: str, policy: str,
                  body: bytes, size: int | None = None) -> dict:
        """Store ``body`` as blob (``version_id``, ``shard``) durably on the node at ``address``;
        ``{"size", "xxh64"}``, or raises what its call raised for it. With ``size`` (the size
        the write declared), a body of any other length is refused (IncompleteBody), unsent,
        as a single write refuses it."""
        return await self.send(address, version_id, shard, bucket, key, policy, body, size)

    def send(self, address: str, version_id: str, shard: int, bucket: str, key: str, policy: str,
             body: bytes, size: int | None = None) -> "asyncio.Future[dict]":
        """:meth:`put` as a future (no coroutine or task of its own while the blob waits in
        its lane); cancelling it cancels the write as cancelling :meth:`put` does."""
        if size is not None and len(body) != size:
            failed: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
            failed.set_exception(IncompleteBody(f"body has {len(body)} of {size} bytes"))
            return failed
        blob = BlobWrite(version_id, shard, bucket, key, policy, body)
        if not self.coalesce or len(body) > MAX_ITEM_BYTES:
            return asyncio.ensure_future(self._put_one(address, blob, None))
        self.blobs += 1
        return self.enqueue(address, blob)

    async def _put_one(self, address: str, blob: BlobWrite, timeout: float | None) -> dict:
        return await self._storage.put_blob(address, blob.version_id, blob.shard, blob.bucket, blob.key, blob.policy,
                                            len(blob.data), bytes(blob.data), timeout=timeout)

    async def _put_many(self, address: str, blobs: list[BlobWrite], timeout: float) -> list[dict | BaseException]:
        if self._missing.single(address):
            return await self._each_alone(address, blobs, timeout)
        end = time.monotonic() + timeout
        try:
            return list(await self._storage.put_blobs(address, blobs, timeout=timeout))
        except ObjstoreError as err:
            if not self._missing.note(address, err):
                raise
        left = end - time.monotonic()  # the blobs' own bound, less what the refused call took
        if left <= 0:
            raise ServiceUnavailable(f"blob write to {address}: no time left after its batch call was refused")
        return await self._each_alone(address, blobs, left)

    async def _each_alone(self, address: str, blobs: list[BlobWrite], timeout: float) -> list[dict | BaseException]:
        return list(await asyncio.gather(*(self._put_one(address, b, timeout) for b in blobs),
                                         return_exceptions=True))
