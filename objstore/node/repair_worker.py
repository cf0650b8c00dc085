"""The storage node's repair worker: leases repair tasks whose target is this node from the
metadata leader, re-creates each copy locally, and asks the leader to commit it.

One copy per task (:class:`objstore.repair_records.RepairTask`):
- a replica: streamed from one surviving replica (``GET`` on its node, which verifies
  every block's checksum before sending it; a short body is an error, never data);
- an ``ec`` shard: the same stripes of K surviving shards are read, decoded and
  re-encoded (:mod:`objstore.erasure`), and the lost shard is kept.
The copy is written to the local store under the task's blob id and shard, so doing a
task twice writes the same blob again (a re-PUT replaces a blob atomically; a half-written
blob is never visible). Only once it is durable does the worker post the commit; the
leader's conditional RepairPlacement then decides. A crash before the commit leaves at
most an unreferenced blob; the lease runs out and the task is done again.

Throttled by a token bucket over the bytes this node receives for repair
(``repair_rate`` MB/s), with an injected clock and sleep.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp

from objstore.client_connector import keepalive_connector
from objstore.erasure import decode_stripe, encode_stripe
from objstore.erasure.data_layout import DataLayout
from objstore.node.blob import BlobId
from objstore.node.client import StorageClient
from objstore.node.register import LeaderError, LeaderHint, call_leader
from objstore.pacing import TokenBucket
from objstore.repair_records import RepairTask, Source
from objstore.tls import client_context

log = logging.getLogger(__name__)

LEASE_PATH = "/v1/repair/lease"
COMMIT_PATH = "/v1/repair/commit"
LEASE_MAX = 4  # tasks leased, and copied at once, per round


class _Exact:
    """Reads exact lengths from a stream of chunks."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()

    async def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            try:
                self._buf += await self._chunks.__anext__()
            except StopAsyncIteration:
                raise IOError("shard stream ended early") from None
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


class RepairWorker:
    """Runs the tasks of node ``node_id``; ``store`` is its BlobStore."""

    def __init__(self, node_id: str, store: Any, storage: StorageClient, call: Callable[[str, dict], Awaitable[Any]],
                 bucket: TokenBucket, on_repaired: Callable[[int], None] = lambda n: None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, poll: float = 1.0,
                 move_bucket: TokenBucket | None = None, on_moved: Callable[[int], None] = lambda n: None,
                 wall: Callable[[], float] = time.time) -> None:
        self.node_id = node_id
        self.store = store
        self.storage = storage
        self.call = call
        self.repair_bucket = bucket
        self.move_bucket = move_bucket or bucket  # rebalancing moves: their own rate
        self.on_repaired = on_repaired
        self.on_moved = on_moved
        self.wall = wall
        self.sleep = sleep
        self.poll = poll

    async def run_forever(self) -> None:
        """Keep up to ``LEASE_MAX`` tasks running: lease more as soon as one ends (so one
        task's commit overlaps the next one's copy); poll every ``poll`` seconds when idle."""
        running: set[asyncio.Task] = set()
        try:
            while True:
                leased = 0
                if len(running) < LEASE_MAX:
                    try:
                        leased = await self.lease(running, LEASE_MAX - len(running))
                    except LeaderError as exc:
                        log.debug("%s", exc)
                if leased:
                    continue
                if running:
                    await asyncio.wait(running, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await self.sleep(self.poll)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def lease(self, running: set[asyncio.Task], count: int) -> int:
        """Lease up to ``count`` tasks and start them in ``running``; returns how many."""
        answer = await self.call(LEASE_PATH, {"node_id": self.node_id, "max": count})
        tasks = [RepairTask.from_dict(t) for t in answer.get("tasks", ())]
        for t in tasks:
            job = asyncio.ensure_future(self.do(t))
            running.add(job)
            job.add_done_callback(running.discard)
        return len(tasks)

    async def run_once(self) -> int:
        """Lease tasks and do them all; returns how many were leased."""
        running: set[asyncio.Task] = set()
        n = await self.lease(running, LEASE_MAX)
        if running:
            await asyncio.gather(*running)
        return n

    async def do(self, t: RepairTask) -> None:
        """Copy, then commit (the copy is durable first). A commit that reaches no leader is
        dropped: the lease runs out and the task is done again."""
        copied_at = self.wall()
        ok = await self.copy(t)
        try:
            outcome = await self.call(COMMIT_PATH, {"node_id": self.node_id, "task": t.to_dict(), "ok": ok,
                                                    "copied_at": copied_at})
        except LeaderError as exc:
            log.info("%s", exc)
            return
        if ok and outcome.get("applied"):
            (self.on_moved if t.move else self.on_repaired)(t.size)
        log.info("repair of %s/%s %s part %d shard %d: %s", t.bucket, t.key, t.version_id, t.part, t.shard,
                 outcome if ok else "copy failed")

    async def copy(self, t: RepairTask) -> bool:
        """Make the task's copy durable here; False when no source could give it."""
        try:
            layout = DataLayout.parse(t.policy)
            if layout.erasure_coded:
                size = layout.stripes.shard_file_size(t.size)
                chunks = self._rebuilt_shard(t, layout)
                header = str(layout.with_size(t.size))
                await self.store.put(BlobId(t.blob, t.shard), t.bucket, t.key, header, size, chunks)
                return True
            for src in t.sources:
                try:
                    async with self.storage.get_blob(src.address, t.blob, 0) as blob:
                        await self.store.put(BlobId(t.blob, 0), t.bucket, t.key, t.policy, t.size,
                                             self._throttled(blob.iter_chunks(), self._bucket(t)))
                    return True
                except Exception as exc:  # noqa: BLE001 - any failure: the next survivor
                    log.info("repair source %s of %s failed: %r", src.node_id, t.blob, exc)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the task fails; the leader plans again
            log.warning("repair of %s/%s (%s) failed: %r", t.bucket, t.key, t.blob, exc)
            return False

    def _bucket(self, t: RepairTask) -> TokenBucket:
        return self.move_bucket if t.move else self.repair_bucket

    async def _throttled(self, chunks: AsyncIterator[bytes], bucket: TokenBucket) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            await bucket.take(len(chunk))
            yield chunk

    async def _rebuilt_shard(self, t: RepairTask, layout: DataLayout) -> AsyncIterator[bytes]:
        """Shard ``t.shard`` of every stripe, decoded from K surviving shards."""
        stripes = layout.stripes
        k, m = stripes.k, stripes.m
        async with AsyncExitStack() as stack:
            readers: dict[int, _Exact] = {}
            for src in sorted(t.sources, key=lambda s: s.shard >= k):  # data shards first: no decoding cost
                if len(readers) == k:
                    break
                if src.shard == t.shard:
                    continue
                try:
                    readers[src.shard] = await self._open(stack, src, t.blob)
                except Exception as exc:  # noqa: BLE001 - any failure: another survivor
                    log.info("repair source %s of %s shard %d failed: %r", src.node_id, t.blob, src.shard, exc)
            if len(readers) < k and t.size > 0:
                raise IOError(f"only {len(readers)} of {k} shards could be opened")
            for s in range(stripes.stripe_count(t.size)):
                w = stripes.stripe_width(t.size, s)
                pieces = dict(zip(readers, await asyncio.gather(*(r.read(w) for r in readers.values()))))
                await self._bucket(t).take(w * len(pieces))
                yield encode_stripe(decode_stripe(pieces, k, m), k, m)[t.shard]

    async def _open(self, stack: AsyncExitStack, src: Source, blob: str) -> _Exact:
        stream = await stack.enter_async_context(self.storage.get_blob(src.address, blob, src.shard))
        return _Exact(stream.iter_chunks())


async def repair_task(cfg: Any, store: Any, on_repaired: Callable[[int], None],
                      on_moved: Callable[[int], None] = lambda n: None) -> None:
    """The background task a storage node runs (its own session), until cancelled."""
    tls = client_context(cfg.tls_ca)
    rate = cfg.repair_rate * 1e6
    moves = cfg.rebalance_rate * 1e6
    timeout = aiohttp.ClientTimeout(total=None, connect=3, sock_read=30)
    hint = LeaderHint()
    async with aiohttp.ClientSession(timeout=timeout, connector=keepalive_connector()) as session:
        async def call(path: str, body: dict) -> Any:
            return await call_leader(session, cfg.metadata, cfg.secret, tls, path, body, hint)

        worker = RepairWorker(cfg.node_id, store, StorageClient(session, cfg.secret, tls=tls), call,
                              TokenBucket(rate, max(rate, 1 << 20)), on_repaired,
                              move_bucket=TokenBucket(moves, max(moves, 1 << 20)), on_moved=on_moved)
        await worker.run_forever()
