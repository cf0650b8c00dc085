"""Which blobs the metadata index still references: the read behind garbage collection.

A storage node names a blob it holds by (bucket, key, version id, shard); the blob is
*referenced* when a version record of that key has that version id, or a part of a
multipart version of that key, or a part of an upload in progress of that key has it.
Shards are not told apart: a version references every shard and replica of its blob.

With the asking node named, a version record references the blob *on that node* only when
its placement (or the part's) includes the node: a copy left on a node outside the
placement (the old copy of a moved or repaired blob, a straggler's late copy) is not
referenced. Such a copy is an orphan only once both its version id and the time it was
written on the node (``created``) are older than ``gc_floor``: a repair or rebalance copy
waiting for its RepairPlacement is younger, and the state machine refuses a RepairPlacement
whose copy started (``copied_at``) before ``gc_floor``, so none can commit a collected copy.
Parts of uploads in progress are referenced the same way: on every node when no node is
named, else only on the nodes of the part's placement (so a part moved off a draining node
leaves its old copy to collection).

Pure reads of :class:`metadata.fsm.machine.MetadataFSM` state; no IO.
"""
from __future__ import annotations

from metadata.fsm import records
from metadata.fsm.machine import MetadataFSM
from objstore.hlc import is_version_id, version_time

REFERENCED = "referenced"
YOUNG = "young"  # unreferenced, but a commit of it could still be accepted: keep
ORPHAN = "orphan"  # unreferenced, and no commit of it will ever be accepted: collect


def is_referenced(fsm: MetadataFSM, bucket: str, key: str, version_id: str, node: str = "") -> bool:
    """Whether a record (or an upload in progress) references the blob; with ``node``, a
    record counts only when it places the blob on that node."""
    index = fsm.objects.get(bucket)
    if index is not None:
        for rec in index.versions(key):
            if not node:
                if records.version_id_of(rec) == version_id:
                    return True
                v = records.decode(bucket, key, rec, fsm.atoms)
                if any(p.version_id == version_id for p in v.parts):
                    return True
                continue
            for _, _, placement, blob_id in records.blob_placements(rec, fsm.atoms)[1]:
                if blob_id == version_id and node in placement:
                    return True
    uploads = fsm.uploads.buckets.get(bucket)
    if uploads:
        for (k, _upload_id) in uploads.irange((key, ""), (key + "\0", "")):
            if k != key:
                continue
            up = uploads[(k, _upload_id)]
            if any(p.part.version_id == version_id and (not node or node in p.part.placement)
                   for p in up.parts.values()):
                return True
    return False


def blob_status(fsm: MetadataFSM, bucket: str, key: str, version_id: str, node: str = "",
                created: float = 0.0) -> str:
    """REFERENCED, YOUNG or ORPHAN (see the constants) of the blob, on ``node`` when named
    (written there at ``created``, unix seconds; 0: unknown). Only a blob whose version id
    is an HLC timestamp older than ``fsm.gc_floor``, and whose copy (when ``created`` is
    given) was written before it, can be an orphan: every later commit naming it (a
    version, a part, a RepairPlacement of a copy started later) is refused."""
    if is_referenced(fsm, bucket, key, version_id, node):
        return REFERENCED
    if fsm.gc_floor > 0 and is_version_id(version_id) and version_time(version_id) < fsm.gc_floor \
            and created < fsm.gc_floor:
        return ORPHAN
    return YOUNG
