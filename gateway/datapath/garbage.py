"""Deleting the blobs of parts nothing references any more (garbage collection's last step).

Best effort, like :func:`gateway.datapath.replicate.delete_blobs`: a node that is down keeps
its copy until a later collection. A few parts at a time, so aborting an upload of 10,000
parts does not open 30,000 requests at once.
"""
from __future__ import annotations

import asyncio
from typing import Sequence

from objstore.node.client import StorageClient
from objstore.types import PartRef

from gateway.datapath.fanout import delete_blobs
from gateway.topology import Topology

CONCURRENT_PARTS = 16


async def delete_placed(storage: StorageClient, topology: Topology, version_id: str, placement: Sequence[str],
                        policy: str | None) -> None:
    """Delete a blob from the nodes of ``placement``: the replica (shard 0) on each node for
    a ``replica`` policy, shard i on node i for an ``ec`` one, both when ``policy`` is None
    (not known to the caller; deleting a blob a node lacks is a no-op)."""
    ec = policy is not None and policy.startswith("ec:")
    targets = []
    for i, node_id in enumerate(placement):
        node = topology.node(node_id)
        if node is not None:
            targets += [(node, shard) for shard in ({i} if ec else {0} if policy is not None else {0, i})]
    await delete_blobs(storage, [n for n, _ in targets], version_id, [shard for _, shard in targets])


async def collect_parts(storage: StorageClient, topology: Topology, parts: Sequence[PartRef],
                        policy: str | None = None) -> None:
    """Delete every replica (or shard, for an ``ec`` policy) of every part in ``parts``;
    ``policy`` is their upload's (see :func:`delete_placed` for None)."""
    for i in range(0, len(parts), CONCURRENT_PARTS):
        await asyncio.gather(*(
            delete_placed(storage, topology, p.version_id, p.placement, policy)
            for p in parts[i : i + CONCURRENT_PARTS]
        ))
