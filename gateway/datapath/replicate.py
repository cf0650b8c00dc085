"""Writing one blob to N storage nodes at once (``replica:N``).

The body is streamed once: every chunk is handed to one bounded queue per node, and one
upload per node drains its queue. Memory is bounded by ``QUEUE_DEPTH`` chunks per node,
never by the object size. A node that fails is dropped from the fan-out (and suspected by
the topology) while the others go on; the write succeeds when at least W nodes made the
blob durable. If the body itself fails (bad digest, short body), every upload is aborted
mid-stream, so no node completes the blob.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Awaitable, Sequence

from objstore.errors import InsufficientReplicas, ObjstoreError
from objstore.node.client import StorageClient
from objstore.types import NodeInfo

from gateway.topology import Topology

log = logging.getLogger(__name__)

QUEUE_DEPTH = 8
INLINE_SIZE = 256 * 1024  # bodies up to this size are verified whole, then sent in one write
_EOF = object()


class _Aborted(Exception):
    """The source body failed; the upload must not complete."""


async def _queue_body(q: asyncio.Queue) -> AsyncIterator[bytes]:
    while True:
        item = await q.get()
        if item is _EOF:
            return
        if isinstance(item, BaseException):
            raise _Aborted() from item
        yield item


async def write_replicas(
    storage: StorageClient,
    topology: Topology,
    nodes: Sequence[NodeInfo],
    *,
    version_id: str,
    bucket: str,
    key: str,
    policy: str,
    size: int,
    chunks: AsyncIterator[bytes],
    write_quorum: int,
) -> list[str]:
    """Stream ``chunks`` to every node; return the ids of nodes holding the blob durably.

    Raises the body's own error if the body fails, or InsufficientReplicas when fewer than
    ``write_quorum`` nodes stored it (blobs on the few that did are deleted again).
    """
    def upload(node: NodeInfo, body: AsyncIterator[bytes] | bytes) -> Awaitable[dict]:
        return storage.put_blob(node.address, version_id, 0, bucket, key, policy, size, body)

    if size <= INLINE_SIZE:
        # A small body is read and verified whole, then sent to every node in one write.
        whole = b"".join([c async for c in chunks])
        results = await asyncio.gather(*(upload(n, whole) for n in nodes), return_exceptions=True)
        return await _settle(storage, topology, nodes, results, set(), version_id, write_quorum)
    queues = [asyncio.Queue(maxsize=QUEUE_DEPTH) for _ in nodes]
    tasks = [asyncio.create_task(upload(n, _queue_body(q))) for n, q in zip(nodes, queues)]
    live = list(range(len(nodes)))
    try:
        async for chunk in chunks:
            for i in list(live):
                if not await _put(queues[i], tasks[i], chunk):
                    live.remove(i)
            if len(live) < write_quorum:
                break
    except BaseException as exc:
        await _abort_uploads(queues, tasks, exc)
        raise
    results, aborted = await _finish_uploads(queues, tasks, live, write_quorum)
    return await _settle(storage, topology, nodes, results, aborted, version_id, write_quorum)


async def _abort_uploads(queues: Sequence[asyncio.Queue], tasks: Sequence[asyncio.Task], exc: BaseException) -> None:
    """The body failed with ``exc``: end every upload without completing its blob."""
    for q in queues:
        _force_put(q, exc if isinstance(exc, Exception) else _Aborted())
    await asyncio.gather(*tasks, return_exceptions=True)


async def _finish_uploads(queues: Sequence[asyncio.Queue], tasks: Sequence[asyncio.Task], live: list[int],
                          write_quorum: int) -> tuple[list[object], set[int]]:
    """The body is all queued: complete the ``live`` uploads if at least ``write_quorum`` are
    left, else abort them too. Returns every upload's result and the indexes aborted here."""
    if len(live) >= write_quorum:
        for i in list(live):
            if not await _put(queues[i], tasks[i], _EOF):
                live.remove(i)
    aborted: set[int] = set()
    if len(live) < write_quorum:
        aborted, live = set(live), []  # too few nodes left: abort rather than finish a short body
    for i in set(range(len(queues))) - set(live):
        _force_put(queues[i], _Aborted())
    return await asyncio.gather(*tasks, return_exceptions=True), aborted


async def _settle(
    storage: StorageClient,
    topology: Topology,
    nodes: Sequence[NodeInfo],
    results: Sequence[object],
    aborted: set[int],
    version_id: str,
    write_quorum: int,
    *,
    shards: bool = False,
) -> list[str]:
    """The nodes that stored the blob; suspects failed nodes; InsufficientReplicas below W.

    With ``shards``, node i was sent shard i (erasure coding) rather than a replica.
    """
    stored: list[str] = []
    for i, (node, res) in enumerate(zip(nodes, results)):
        if i in aborted:
            continue
        if isinstance(res, BaseException):
            if not isinstance(res, (_Aborted, asyncio.CancelledError)):
                log.warning("write of %s to %s failed: %s", version_id, node.node_id, res)
            if not isinstance(res, ObjstoreError) or res.status >= 500:
                topology.suspect(node.node_id)
        else:
            stored.append(node.node_id)
    if len(stored) < write_quorum:
        kept = [i for i, n in enumerate(nodes) if n.node_id in stored]
        await delete_blobs(storage, [nodes[i] for i in kept], version_id, kept if shards else None)
        raise InsufficientReplicas(
            f"Only {len(stored)} of {len(nodes)} storage nodes stored the object; {write_quorum} are required."
        )
    return stored


async def _put(q: asyncio.Queue, upload: asyncio.Task, item: object) -> bool:
    """Queue ``item`` for an upload; False if the upload ended (failed) first."""
    if upload.done():
        return False
    if not q.full():
        q.put_nowait(item)
        return True
    put = asyncio.ensure_future(q.put(item))
    await asyncio.wait({put, upload}, return_when=asyncio.FIRST_COMPLETED)
    if put.done():
        return True
    put.cancel()
    return False


def _force_put(q: asyncio.Queue, item: object) -> None:
    """Put ``item`` even if the queue is full (dropping queued chunks: the upload is ending)."""
    while q.full():
        q.get_nowait()
    q.put_nowait(item)


async def delete_blobs(storage: StorageClient, nodes: Sequence[NodeInfo], version_id: str,
                       shards: Sequence[int] | None = None) -> None:
    """Best-effort removal of a blob from nodes (garbage collection repeats what fails):
    the replica (shard 0) from each node, or with ``shards`` shard ``shards[i]`` from ``nodes[i]``."""
    async def one(n: NodeInfo, shard: int) -> None:
        try:
            await storage.delete_blob(n.address, version_id, shard)
        except Exception as exc:  # noqa: BLE001
            log.info("could not delete %s from %s: %s", version_id, n.node_id, exc)

    await asyncio.gather(*(one(n, 0 if shards is None else shards[i]) for i, n in enumerate(nodes)))
