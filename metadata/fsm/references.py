"""Which blobs the metadata index still references: the read behind garbage collection.

A storage node names a blob it holds by (bucket, key, version id, shard); the blob is
*referenced* when a version record of that key has that version id, or a part of a
multipart version of that key, or a part of an upload in progress of that key has it.
Shards are not told apart: a version references every shard and replica of its blob.
A node that names itself learns more: a blob referenced only by placements that do not
list that node is ELSEWHERE there (a stale copy on a node that was out while repair
re-created it elsewhere, or a copy a write abandoned): not current, never read from it.

Pure reads of :class:`metadata.fsm.machine.MetadataFSM` state; no IO.
"""
from __future__ import annotations

from metadata.fsm import records
from metadata.fsm.machine import MetadataFSM
from objstore.hlc import is_version_id, version_time

REFERENCED = "referenced"
YOUNG = "young"  # unreferenced, but a commit of it could still be accepted: keep
ORPHAN = "orphan"  # unreferenced, and no commit of it will ever be accepted: collect
ELSEWHERE = "elsewhere"  # referenced, but no placement of it lists the asking node


def placements_of(fsm: MetadataFSM, bucket: str, key: str,
                  version_id: str) -> list[tuple[str, ...] | None] | None:
    """The placements of every blob with that version id (a version's own, a part of a
    multipart version or of an upload in progress; None for a record of that id that has
    no blob of it, e.g. a multipart version: it counts for any node); None when nothing
    references it."""
    found: list[tuple[str, ...] | None] = []
    index = fsm.objects.get(bucket)
    if index is not None:
        for rec in index.versions(key):
            _, blobs = records.blob_placements(rec, fsm.atoms)
            mine = [placement for _, _, placement, blob_id in blobs if blob_id == version_id]
            if not mine and records.version_id_of(rec) == version_id:
                mine = [None]
            found.extend(mine)
    uploads = fsm.uploads.buckets.get(bucket)
    if uploads:
        for (k, _upload_id) in uploads.irange((key, ""), (key + "\0", "")):
            if k != key:
                continue
            up = uploads[(k, _upload_id)]
            found.extend(p.part.placement for p in up.parts.values() if p.part.version_id == version_id)
    return found or None


def is_referenced(fsm: MetadataFSM, bucket: str, key: str, version_id: str) -> bool:
    return placements_of(fsm, bucket, key, version_id) is not None


def blob_status(fsm: MetadataFSM, bucket: str, key: str, version_id: str, node_id: str = "") -> str:
    """REFERENCED, YOUNG, ORPHAN or, when ``node_id`` names the asking node, ELSEWHERE (see
    the constants). Only a blob whose version id is an HLC timestamp older than
    ``fsm.gc_floor`` can be an orphan: every later commit naming it is refused by the
    state machine."""
    placements = placements_of(fsm, bucket, key, version_id)
    if placements is not None:
        if node_id and not any(p is None or node_id in p for p in placements):
            return ELSEWHERE
        return REFERENCED
    if fsm.gc_floor > 0 and is_version_id(version_id) and version_time(version_id) < fsm.gc_floor:
        return ORPHAN
    return YOUNG
