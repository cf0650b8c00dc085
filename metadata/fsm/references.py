"""Which blobs the metadata index still references: the read behind garbage collection.

A storage node names a blob it holds by (bucket, key, version id, shard); the blob is
*referenced* when a version record of that key has that version id, or a part of a
multipart version of that key, or a part of an upload in progress of that key has it.
Shards are not told apart: a version references every shard and replica of its blob.

Pure reads of :class:`metadata.fsm.machine.MetadataFSM` state; no IO.
"""
from __future__ import annotations

from metadata.fsm import records
from metadata.fsm.machine import MetadataFSM
from objstore.hlc import is_version_id, version_time

REFERENCED = "referenced"
YOUNG = "young"  # unreferenced, but a commit of it could still be accepted: keep
ORPHAN = "orphan"  # unreferenced, and no commit of it will ever be accepted: collect


def is_referenced(fsm: MetadataFSM, bucket: str, key: str, version_id: str) -> bool:
    index = fsm.objects.get(bucket)
    if index is not None:
        for rec in index.versions(key):
            if records.version_id_of(rec) == version_id:
                return True
            v = records.decode(bucket, key, rec, fsm.atoms)
            if any(p.version_id == version_id for p in v.parts):
                return True
    uploads = fsm.uploads.buckets.get(bucket)
    if uploads:
        for (k, _upload_id) in uploads.irange((key, ""), (key + "\0", "")):
            if k != key:
                continue
            up = uploads[(k, _upload_id)]
            if any(p.part.version_id == version_id for p in up.parts.values()):
                return True
    return False


def blob_status(fsm: MetadataFSM, bucket: str, key: str, version_id: str) -> str:
    """REFERENCED, YOUNG or ORPHAN (see the constants). Only a blob whose version id is an
    HLC timestamp older than ``fsm.gc_floor`` can be an orphan: every later commit naming
    it is refused by the state machine."""
    if is_referenced(fsm, bucket, key, version_id):
        return REFERENCED
    if fsm.gc_floor > 0 and is_version_id(version_id) and version_time(version_id) < fsm.gc_floor:
        return ORPHAN
    return YOUNG
