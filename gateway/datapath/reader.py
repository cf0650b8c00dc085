"""Reading one object's bytes from its replicas, failing over between them.

Replicas are tried in placement order, suspected nodes last. When a replica fails before
its first byte (down, missing, corrupt) the next one is asked; when it fails in the middle
(killed, or a corrupt block found while streaming) the next one is asked for the rest of
the range only, so the client receives one continuous, verified byte stream. Only when
every replica has failed does the read fail.
"""
from __future__ import annotations

import logging
from typing import AsyncIterator

from objstore.errors import CorruptBlob, NoSuchKey, ServiceUnavailable
from objstore.node.client import StorageClient
from objstore.types import ObjectVersion

from gateway.topology import Topology

log = logging.getLogger(__name__)


def replica_order(topology: Topology, version: ObjectVersion) -> list[str]:
    ids = list(version.placement)
    return [i for i in ids if not topology.is_suspect(i)] + [i for i in ids if topology.is_suspect(i)]


async def read_range(
    storage: StorageClient,
    topology: Topology,
    version: ObjectVersion,
    start: int,
    end: int,
) -> AsyncIterator[bytes]:
    """Yield bytes ``start..end`` (inclusive) of the object, verified, from any replica."""
    if end < start:
        return
    pos = start
    errors: list[str] = []
    for node_id in replica_order(topology, version):
        node = topology.node(node_id)
        if node is None:
            errors.append(f"{node_id}: not in the cluster map")
            continue
        try:
            async with storage.get_blob(node.address, version.version_id, 0, pos, end) as blob:
                async for chunk in blob.iter_chunks():
                    if not chunk:
                        continue
                    take = chunk[: end - pos + 1]
                    pos += len(take)
                    yield take
                    if pos > end:
                        return
            if pos > end:
                return
            errors.append(f"{node_id}: stream ended early")
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next replica
            errors.append(f"{node_id}: {exc}")
            if not isinstance(exc, (NoSuchKey, CorruptBlob)):
                topology.suspect(node_id)
            log.info("read of %s/%s from %s failed at byte %d: %s", version.bucket, version.key, node_id, pos, exc)
    if pos <= end:
        raise ServiceUnavailable(
            f"No replica could serve {version.bucket}/{version.key} (from byte {pos}): " + "; ".join(errors)
        )
