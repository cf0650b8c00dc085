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

from gateway.datapath.replicate import delete_blobs
from gateway.topology import Topology

CONCURRENT_PARTS = 16


async def collect_parts(storage: StorageClient, topology: Topology, parts: Sequence[PartRef]) -> None:
    """Delete every replica of every part in ``parts``."""
    for i in range(0, len(parts), CONCURRENT_PARTS):
        await asyncio.gather(*(
            delete_blobs(storage, [n for n in map(topology.node, p.placement) if n is not None], p.version_id)
            for p in parts[i : i + CONCURRENT_PARTS]
        ))
