"""Per-bucket usage counters of the state machine: exact after every kind of change, equal to
a full scan of the index, and rebuilt identically by a snapshot restore."""
from __future__ import annotations

from metadata.api import commands as c
from metadata.fsm.machine import MetadataFSM
from tests.unit.test_fsm_versioning import d, delete, enable, obj, put  # noqa: F401 - the fixture
from tests.unit.test_uploads import upload


def scanned(fsm: MetadataFSM, bucket: str = "b") -> dict[str, int]:
    """The usage of ``bucket`` by reading every version (what the counters must equal)."""
    objects = versions = markers = size = 0
    for v in fsm.iter_versions(bucket):
        if v.delete_marker:
            markers += 1
        else:
            versions += 1
            size += v.size
    objects = len(fsm.list_objects(bucket, max_keys=100_000).contents)
    return {"objects": objects, "versions": versions, "delete_markers": markers, "bytes": size,
            "uploads": fsm.uploads.bucket_count(bucket)}


def test_usage_follows_puts_overwrites_and_deletes_unversioned(d):
    assert d.fsm.bucket_usage() == {"b": {"objects": 0, "versions": 0, "delete_markers": 0, "bytes": 0, "uploads": 0}}
    put(d, obj("a", 1))
    put(d, obj("b", 2))
    put(d, obj("a", 5))  # replaces the null version of "a"
    assert d.fsm.bucket_usage()["b"] == {"objects": 2, "versions": 2, "delete_markers": 0, "bytes": 7, "uploads": 0}
    delete(d, "a")
    assert d.fsm.bucket_usage()["b"] == scanned(d.fsm) == {
        "objects": 1, "versions": 1, "delete_markers": 0, "bytes": 2, "uploads": 0}


def test_usage_counts_versions_and_delete_markers(d):
    enable(d)
    put(d, obj("k", 1))
    put(d, obj("k", 2))
    delete(d, "k", marker=3)
    assert d.fsm.bucket_usage()["b"] == scanned(d.fsm) == {
        "objects": 0, "versions": 2, "delete_markers": 1, "bytes": 3, "uploads": 0}
    delete(d, "k", version_id=obj("k", 1).version_id)
    enable(d, "Suspended")
    put(d, obj("j", 4))
    assert d.fsm.bucket_usage()["b"] == scanned(d.fsm) == {
        "objects": 1, "versions": 2, "delete_markers": 1, "bytes": 6, "uploads": 0}


def test_usage_counts_uploads_and_survives_a_snapshot_restore(d):
    put(d, obj("x", 10))
    d.run(c.CreateMultipartUpload(upload(uid="u1")))
    d.run(c.CreateMultipartUpload(upload(uid="u2")))
    before = d.fsm.bucket_usage()
    assert before["b"]["uploads"] == 2 and before["b"]["bytes"] == 10
    restored = MetadataFSM.restore(d.fsm.snapshot())
    assert restored.bucket_usage() == before
    d.run(c.AbortMultipartUpload("b", "k", "u1"))
    assert d.fsm.bucket_usage()["b"]["uploads"] == 1
