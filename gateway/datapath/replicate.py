"""Writing one blob to N storage nodes at once (``replica:N``).

The body is streamed once: every chunk is handed to one bounded queue per node, and one
upload per node drains its queue (:class:`gateway.datapath.fanout.FanOut`). Memory is
bounded by ``QUEUE_DEPTH`` chunks per node, never by the object size. A node that fails
is dropped from the fan-out (and suspected by the topology) while the others go on; a
node that is full before the body started is replaced by a handoff node; a node that
stalls is abandoned once W others acknowledged (or keep up) and ``straggler`` seconds
passed. The write succeeds when at least W nodes made the blob durable. If the body
itself fails (bad digest, short body), every upload is aborted mid-stream, so no node
completes the blob.
"""
from __future__ import annotations

from typing import AsyncIterator, Awaitable, Sequence

from objstore.node.client import StorageClient
from objstore.types import NodeInfo

from gateway.datapath.blob_lanes import BlobLanes
from gateway.datapath.fanout import DEFAULT_STRAGGLER_SECONDS, FanOut, Handoff
from gateway.topology import Topology

QUEUE_DEPTH = 8
INLINE_SIZE = 256 * 1024  # bodies up to this size are verified whole, then sent in one write


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
    straggler: float = DEFAULT_STRAGGLER_SECONDS,
    handoff: Handoff | None = None,
    blobs: BlobLanes | None = None,
) -> list[str]:
    """Stream ``chunks`` to every node; return the ids of nodes holding the blob durably,
    in placement order (a full node's handoff takes its place).

    Raises the body's own error if the body fails, or InsufficientReplicas when fewer than
    ``write_quorum`` nodes stored it (blobs on the few that did are deleted again).
    With ``blobs``, a small body goes through its lanes (coalesced per node).
    """
    def upload(node: NodeInfo, _: int, body: AsyncIterator[bytes] | bytes) -> Awaitable[dict]:
        if blobs is not None and isinstance(body, bytes):
            return blobs.send(node.address, version_id, 0, bucket, key, policy, body, size)
        return storage.put_blob(node.address, version_id, 0, bucket, key, policy, size, body)

    fan = FanOut(storage, topology, nodes, upload, version_id=version_id, quorum=write_quorum,
                 straggler=straggler, handoff=handoff)
    if size <= INLINE_SIZE:
        # A small body is read and verified whole, then sent to every node in one write.
        whole = b"".join([c async for c in chunks])
        return [p for p in await fan.send_whole([whole] * len(nodes)) if p]
    fan.open_streams(QUEUE_DEPTH)
    try:
        async for chunk in chunks:
            await fan.send([chunk] * len(nodes))
            if len(fan.live) < write_quorum:
                break
    except BaseException as exc:
        await fan.abort(exc)
        raise
    return [p for p in await fan.finish() if p]
