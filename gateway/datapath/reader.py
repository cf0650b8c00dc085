"""Reading one object's bytes from its replicas, failing over between them.

An ``ec:K+M`` object (its record's policy says so) is read from its shards instead:
:mod:`gateway.datapath.erasure_read`.

Replicas are tried in placement order, suspected nodes last. When a replica fails before
its first byte (down, missing, corrupt, or silent for the storage client's read-stall
bound) the next one is asked; when it fails in the middle (killed, stalled, or a corrupt
block found while streaming) the next one is asked for the rest of the range only, so the
client receives one continuous, verified byte stream. The last replica to try is waited
on without the stall bound (there is nothing to turn to). Only when every replica has
failed does the read fail.

A multipart object's bytes are its parts' blobs in order, each with its own placement: a
range is served part by part (only the parts it overlaps, each from its own replicas with
the same failover), one part's stream open at a time, so memory stays bounded by the
stream buffers whatever the part sizes.
"""
from __future__ import annotations

import bisect
import logging
from typing import AsyncIterator, Callable, Sequence

from objstore.erasure.data_layout import DataLayout
from objstore.errors import CorruptBlob, NoSuchKey, ServiceUnavailable
from objstore.node.client import StorageClient
from objstore.repair_records import DamageReport
from objstore.types import ObjectVersion, PartRef

from gateway.datapath.damage import blob_reporter
from gateway.datapath.erasure_read import Damaged, read_shards
from gateway.topology import Topology

log = logging.getLogger(__name__)


def replica_order(topology: Topology, placement: ObjectVersion | Sequence[str]) -> list[str]:
    """Node ids of a placement (or of a version's own placement), suspected nodes last."""
    ids = list(placement.placement if isinstance(placement, ObjectVersion) else placement)
    return [i for i in ids if not topology.is_suspect(i)] + [i for i in ids if topology.is_suspect(i)]


def part_spans(parts: Sequence[PartRef], start: int, end: int) -> list[tuple[PartRef, int, int]]:
    """The parts overlapping object bytes ``start..end`` (inclusive), each with the
    inclusive byte range to read inside that part. Pure."""
    offsets = [0]
    for p in parts:
        offsets.append(offsets[-1] + p.size)
    spans = []
    i = max(bisect.bisect_right(offsets, start) - 1, 0)
    while i < len(parts) and offsets[i] <= end:
        lo, hi = max(start, offsets[i]), min(end, offsets[i + 1] - 1)
        if lo <= hi:
            spans.append((parts[i], lo - offsets[i], hi - offsets[i]))
        i += 1
    return spans


async def read_range(
    storage: StorageClient,
    topology: Topology,
    version: ObjectVersion,
    start: int,
    end: int,
    report: Callable[[DamageReport], None] | None = None,
) -> AsyncIterator[bytes]:
    """Yield bytes ``start..end`` (inclusive) of the object, verified, from any replica.
    ``report`` is told of every copy found missing or corrupt on its node (read repair)."""
    if end < start:
        return
    what = f"{version.bucket}/{version.key}"
    layout = DataLayout.parse(version.policy)
    if not version.parts:
        async for chunk in _read_stored(storage, topology, layout, version.version_id, version.placement,
                                        version.size, start, end, what,
                                        blob_reporter(report, version.bucket, version.key, version.version_id, 0)):
            yield chunk
        return
    for part, lo, hi in part_spans(version.parts, start, end):
        async for chunk in _read_stored(storage, topology, layout, part.version_id, part.placement, part.size,
                                        lo, hi, f"{what} part {part.number}",
                                        blob_reporter(report, version.bucket, version.key, version.version_id,
                                                      part.number)):
            yield chunk


def _read_stored(storage: StorageClient, topology: Topology, layout: DataLayout, version_id: str,
                 placement: Sequence[str], size: int, start: int, end: int, what: str,
                 damaged: Damaged | None = None) -> AsyncIterator[bytes]:
    """One blob's bytes: from its replicas, or decoded from its shards for an ``ec`` layout."""
    if layout.erasure_coded:
        return read_shards(storage, topology, version_id, placement, layout, size, start, end, what, damaged)
    return read_blob(storage, topology, version_id, placement, start, end, what, damaged)


async def read_small(
    storage: StorageClient,
    topology: Topology,
    version: ObjectVersion,
    start: int,
    end: int,
    report: Callable[[DamageReport], None] | None = None,
) -> bytes | None:
    """Bytes ``start..end`` (inclusive) of a replicated single-part object, each replica
    read whole in one call, with :func:`read_blob`'s failover (a replica's answer is all
    or nothing, so the next one is asked for the whole range); None when the read is not
    of that kind (the caller streams it with :func:`read_range`)."""
    if version.parts or end < start or not storage.reads_small(start, end) \
            or DataLayout.parse(version.policy).erasure_coded:
        return None
    what = f"{version.bucket}/{version.key}"
    damaged = blob_reporter(report, version.bucket, version.key, version.version_id, 0)
    errors: list[str] = []
    order = replica_order(topology, version.placement)
    for n, node_id in enumerate(order):
        node = topology.node(node_id)
        if node is None:
            errors.append(f"{node_id}: not in the cluster map")
            continue
        try:
            held = await storage.get_small(node.address, version.version_id, 0, start, end,
                                           patient=n == len(order) - 1)
        except Exception as exc:  # noqa: BLE001 - any failure means: try the next replica
            _failed(topology, damaged, errors, what, version.version_id, node_id, start, exc)
            continue
        body = await held.read()
        if len(body) > end - start:
            return body[: end - start + 1]
        errors.append(f"{node_id}: stream ended early")
    raise ServiceUnavailable(f"No replica could serve {what} (from byte {start}): " + "; ".join(errors))


def _failed(topology: Topology, damaged: Damaged | None, errors: list[str], what: str, version_id: str,
            node_id: str, pos: int, exc: Exception) -> None:
    """Note a replica's failure: suspect its node, or report its copy missing or corrupt."""
    errors.append(f"{node_id}: {exc}")
    if not isinstance(exc, (NoSuchKey, CorruptBlob)):
        topology.suspect(node_id)
    elif damaged is not None:
        damaged(node_id, 0, "missing" if isinstance(exc, NoSuchKey) else "corrupt")
    log.info("read of %s (%s) from %s failed at byte %d: %s", what, version_id, node_id, pos, exc)


async def read_blob(
    storage: StorageClient,
    topology: Topology,
    version_id: str,
    placement: Sequence[str],
    start: int,
    end: int,
    what: str = "",
    damaged: Damaged | None = None,
) -> AsyncIterator[bytes]:
    """Yield bytes ``start..end`` (inclusive) of one blob from any of ``placement``;
    ``damaged(node id, shard, reason)`` is told of a copy missing or corrupt on its node."""
    if end < start:
        return
    pos = start
    errors: list[str] = []
    order = replica_order(topology, placement)
    for n, node_id in enumerate(order):
        node = topology.node(node_id)
        if node is None:
            errors.append(f"{node_id}: not in the cluster map")
            continue
        last = n == len(order) - 1  # no replica left to turn to: no stall bound
        try:
            async with storage.get_blob(node.address, version_id, 0, pos, end, patient=last) as blob:
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
            _failed(topology, damaged, errors, what, version_id, node_id, pos, exc)
    if pos <= end:
        raise ServiceUnavailable(f"No replica could serve {what or version_id} (from byte {pos}): " + "; ".join(errors))
