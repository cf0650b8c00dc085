"""Writing one object as K+M shard blobs (``ec:K+M``): shard i of every stripe to node i.

The body is cut into stripes by a ``StripeEncoder`` and each complete stripe is encoded at
once; shard i goes to node i's bounded queue, drained by one upload per node. Memory is
one stripe being filled (or, for a large body, one batch of stripes being coded, one
being gathered and up to ``SEND_JOBS`` coded ones held to be sent together) plus ``SHARD_QUEUE_DEPTH`` stripes' shards in the queues, never the object
size. A small body's stripes are coded inline, on the event loop (about 1-2 ms per 1 MiB
stripe for 4+2); a body of ``OFFLOAD_SIZE`` bytes or more is coded on the gateway's worker
pool (:mod:`gateway.datapath.offload`) ``BATCH`` bytes per job, the loop sending coded
batches' shards and receiving the next batch while the pool codes (a hand-over per 1 MiB
stripe measured slower than inline on two busy cores; per 4 MiB it is a quarter of those).
The shards of ``SEND_JOBS`` coded batches are queued together, so each node receives
``SEND_JOBS`` batches' pieces (2 MiB for 4+2) in one burst rather than one piece per
batch: a node that wakes for fewer, larger bursts spends less CPU per byte (it idles
between them, as a replica's node, fed every chunk, does not). That holds up to
``SEND_JOBS`` coded batches more in the gateway.

A node that fails is dropped (and suspected) while the others go on (a full one is
replaced by a handoff node, a stalled one abandoned: :mod:`gateway.datapath.fanout`); the write fails
early once fewer than W (the bucket's; by default ``Policy.default_write_quorum``, K+1)
nodes are live. It succeeds when at least W nodes made their shard blob durable: a blob
is only durable whole, so then every stripe has at least W of its shards. Below W the blobs stored are
deleted again and InsufficientReplicas (503) is raised: no record is written, so no
object becomes visible. If the body itself fails (bad digest, short body), every upload
is aborted mid-stream, so no node completes a shard blob.

Each shard blob's header names its shard index and, in its policy field, the layout and
the object size (``DataLayout``): a node's blobs say on their own what they belong to.
"""
from __future__ import annotations

from typing import AsyncIterator, Awaitable, Sequence

from objstore.erasure import StripeEncoder, encode_stream
from objstore.erasure.data_layout import DataLayout
from objstore.node.client import StorageClient
from objstore.types import NodeInfo

from gateway.datapath.blob_lanes import BlobLanes
from gateway.datapath.offload import BATCH, Sequenced, offloaded
from gateway.datapath.fanout import DEFAULT_STRAGGLER_SECONDS, FanOut, Handoff
from gateway.datapath.replicate import INLINE_SIZE
from gateway.topology import Topology

SHARD_QUEUE_DEPTH = 2  # stripes queued per node beyond the one being encoded
SEND_JOBS = 2  # a large body's coding jobs whose shards go to the nodes together


async def write_shards(
    storage: StorageClient,
    topology: Topology,
    nodes: Sequence[NodeInfo],
    *,
    layout: DataLayout,
    version_id: str,
    bucket: str,
    key: str,
    size: int,
    chunks: AsyncIterator[bytes],
    write_quorum: int = 0,
    straggler: float = DEFAULT_STRAGGLER_SECONDS,
    handoff: Handoff | None = None,
    blobs: BlobLanes | None = None,
) -> tuple[str, ...]:
    """Stream ``chunks`` as shard blobs, shard i to ``nodes[i]``; return the placement:
    shard i's node id (a handoff's when ``nodes[i]`` was full), or "" where no node stored
    shard i.

    ``nodes`` are K+M distinct nodes (fewer when the cluster could not place them all;
    the missing shards are never written). Raises the body's error if the body fails, or
    InsufficientReplicas when fewer than W shard blobs became durable (``write_quorum``;
    0: the policy's default). With ``blobs``, small shard blobs go through its lanes
    (coalesced per node).
    """
    stripes = layout.stripes
    quorum = write_quorum or layout.policy.default_write_quorum()
    nodes = list(nodes)[: stripes.n]
    header = str(layout.with_size(size))
    shard_size = stripes.shard_file_size(size)

    def upload(node: NodeInfo, i: int, body: AsyncIterator[bytes] | bytes) -> Awaitable[dict]:
        if blobs is not None and isinstance(body, bytes):
            return blobs.put(node.address, version_id, i, bucket, key, header, body, shard_size)
        return storage.put_blob(node.address, version_id, i, bucket, key, header, shard_size, body)

    fan = FanOut(storage, topology, nodes, upload, version_id=version_id, quorum=quorum, straggler=straggler,
                 handoff=handoff, shards=True)
    if size <= INLINE_SIZE:
        whole = b"".join([c async for c in chunks])
        shards = [b"".join(col) for col in zip(*encode_stream(stripes, [whole]))] or [b""] * stripes.n
        return _placement(await fan.send_whole(shards), stripes.n)
    fan.open_streams(SHARD_QUEUE_DEPTH)
    enc = StripeEncoder(stripes)
    jobs = Sequenced() if offloaded(size) else None
    batch: list[bytes] = []
    batched = 0
    held: list[list[bytes]] = []  # coded stripes not sent yet (SEND_JOBS jobs' worth at most)
    held_jobs = 0
    try:
        async for chunk in chunks:
            if jobs is None:
                coded = list(enc.feed(chunk))
            else:  # code BATCH bytes per job; send the previous batches' stripes meanwhile
                batch.append(chunk)
                batched += len(chunk)
                if batched < BATCH:
                    continue
                held += await jobs.wait() or []
                await jobs.submit(_encode, enc, batch)
                batch, batched = [], 0
                held_jobs += 1  # jobs submitted whose stripes were not sent, the one just submitted included
                if held_jobs <= SEND_JOBS:
                    continue
                coded, held, held_jobs = held, [], 1
            for shards in coded:
                await fan.send(shards)
            if len(fan.live) < quorum:
                break
        else:
            if jobs is not None:
                held += await jobs.wait() or []
                if batch:
                    await jobs.submit(_encode, enc, batch)
                for shards in held + (await jobs.wait() or []):
                    await fan.send(shards)
            last = enc.finish()
            if last is not None:
                await fan.send(last)
    except BaseException as exc:
        if jobs is not None:
            jobs.cancel()
        await fan.abort(exc)
        raise
    if jobs is not None:
        jobs.cancel()  # the write stopped early (too few nodes left): drop what is still being coded
    return _placement(await fan.finish(), stripes.n)


def _encode(enc: StripeEncoder, chunks: list[bytes]) -> list[list[bytes]]:
    """The shards of the stripes ``chunks`` complete. A batch that is exactly one stripe's
    K data shards (4 MiB stripes of ec:4+2: four 1 MiB chunks) is coded from the chunks
    as they are; otherwise the chunks go through the encoder's stripe buffer."""
    whole = enc.feed_shards(chunks)
    if whole is not None:
        return [whole]
    return [shards for chunk in chunks for shards in enc.feed(chunk)]


def _placement(stored: Sequence[str], n: int) -> tuple[str, ...]:
    return tuple(list(stored) + [""] * (n - len(stored)))
