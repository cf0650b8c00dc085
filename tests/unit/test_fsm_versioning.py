"""The metadata state machine's versioning: null versions, delete markers, version ids,
conditional writes, tags, version listing, snapshots (and format-1 migration)."""
from __future__ import annotations

import json

import pytest

from metadata.api import commands as c
from metadata.fsm.machine import MetadataFSM
from metadata.api.results import DeleteResult, WriteResult
from objstore.errors import (
    BucketNotEmpty, InvalidArgument, InvalidTag, MethodNotAllowed, NoSuchKey, NoSuchVersion, PreconditionFailed,
)
from objstore.types import ObjectVersion
from tests.unit.test_fsm import Driver

ETAG_A = "0123456789abcdef0123456789abcdef"
ETAG_B = "fedcba9876543210fedcba9876543210"


def vid(n: int) -> str:
    return f"{n:016x}-gw1"


def obj(key="k", n=1, etag=ETAG_A, **kw) -> ObjectVersion:
    return ObjectVersion(bucket="b", key=key, version_id=vid(n), size=n, etag=etag, last_modified=1700000000.0 + n,
                         placement=("n1", "n2"), owner="alice", **kw)


@pytest.fixture
def d() -> Driver:
    drv = Driver()
    drv.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    return drv


def enable(d: Driver, status: str = "Enabled") -> None:
    assert d.run(c.SetBucketVersioning("b", status)).versioning == status


def put(d: Driver, v: ObjectVersion, **kw) -> WriteResult:
    return d.run(c.PutObject(v, **kw))


def delete(d: Driver, key="k", version_id="", marker=0) -> DeleteResult:
    return d.run(c.DeleteObject("b", key, version_id=version_id, marker_id=vid(marker) if marker else "",
                                now=1700000100.0))


def ids(d: Driver, key="k") -> list[str]:
    page = d.fsm.list_object_versions("b", prefix=key, max_keys=1000)
    return [v.s3_version_id + ("*" if v.delete_marker else "") for v in page.versions if v.key == key]


# --- bucket versioning state ------------------------------------------------------------------


def test_versioning_state_transitions(d):
    assert d.fsm.get_bucket("b").versioning == ""
    enable(d)
    enable(d, "Suspended")
    enable(d)
    with pytest.raises(InvalidArgument):
        d.run(c.SetBucketVersioning("b", ""))
    with pytest.raises(InvalidArgument):
        d.run(c.SetBucketVersioning("b", "Disabled"))


# --- unversioned ------------------------------------------------------------------------------


def test_unversioned_put_replaces_the_null_version(d):
    r1 = put(d, obj(n=1))
    assert r1 == WriteResult("null", "", None)
    r2 = put(d, obj(n=2))
    assert r2.version_id == "null" and r2.replaced == obj(n=1)
    assert d.fsm.get_object("b", "k") == obj(n=2) and ids(d) == ["null"]
    # The unversioned common case keeps one compact bytes record per key.
    assert isinstance(d.fsm.objects["b"].live["k"], bytes)


def test_unversioned_delete_drops_the_key(d):
    put(d, obj(n=1))
    r = delete(d)
    assert r == DeleteResult(None, False, "", obj(n=1))
    assert d.fsm.objects["b"].is_empty()
    assert delete(d) == DeleteResult(None, False, "", None)


# --- enabled ----------------------------------------------------------------------------------


def test_enabled_put_adds_versions_newest_first(d):
    put(d, obj(n=1))  # a null version from before versioning
    enable(d)
    r = put(d, obj(n=2))
    assert r == WriteResult(vid(2), "Enabled", None)
    put(d, obj(n=3))
    assert ids(d) == [vid(3), vid(2), "null"]
    assert d.fsm.get_object("b", "k").version_id == vid(3)
    assert d.fsm.get_object("b", "k", "null") == obj(n=1)
    assert d.fsm.get_object("b", "k", vid(2)).versioned
    with pytest.raises(NoSuchVersion):
        d.fsm.get_object("b", "k", vid(9))


def test_delete_without_version_adds_a_marker_that_hides_the_key(d):
    enable(d)
    put(d, obj(n=1))
    r = delete(d, marker=2)
    assert r == DeleteResult(vid(2), True, "Enabled", None)
    assert ids(d) == [vid(2) + "*", vid(1)]
    with pytest.raises(NoSuchKey) as exc:
        d.fsm.get_object("b", "k")
    assert exc.value.extra["delete_marker"] is True and exc.value.extra["version_id"] == vid(2)
    with pytest.raises(MethodNotAllowed) as exc:
        d.fsm.get_object("b", "k", vid(2))
    assert exc.value.extra["delete_marker"] is True
    assert d.fsm.get_object("b", "k", vid(1)) == obj(n=1, versioned=True)
    assert d.fsm.list_objects("b").contents == ()
    # A marker on a key that never existed is still created (S3 does).
    assert delete(d, key="ghost", marker=3).delete_marker
    assert ids(d, "ghost") == [vid(3) + "*"]


def test_enabled_delete_needs_a_marker_id(d):
    enable(d)
    with pytest.raises(InvalidArgument):
        delete(d)


def test_deleting_the_delete_marker_undeletes(d):
    enable(d)
    put(d, obj(n=1))
    delete(d, marker=2)
    r = delete(d, version_id=vid(2))
    assert r.delete_marker and r.version_id == vid(2) and r.removed.delete_marker
    assert d.fsm.get_object("b", "k").version_id == vid(1)
    assert [v.key for v in d.fsm.list_objects("b").contents] == ["k"]


def test_delete_by_version_id_removes_it_permanently(d):
    enable(d)
    for n in (1, 2, 3):
        put(d, obj(n=n))
    r = delete(d, version_id=vid(2))
    assert r == DeleteResult(vid(2), False, "Enabled", obj(n=2, versioned=True))
    assert ids(d) == [vid(3), vid(1)]
    r = delete(d, version_id=vid(3))  # the current one: the previous becomes current
    assert d.fsm.get_object("b", "k").version_id == vid(1)
    assert delete(d, version_id=vid(7)) == DeleteResult(vid(7), False, "Enabled", None)
    delete(d, version_id=vid(1))
    assert d.fsm.objects["b"].is_empty()


def test_bucket_with_only_versions_or_markers_is_not_empty(d):
    enable(d)
    delete(d, marker=1)
    with pytest.raises(BucketNotEmpty):
        d.run(c.DeleteBucket("b"))
    delete(d, version_id=vid(1))
    d.run(c.DeleteBucket("b"))


# --- suspended --------------------------------------------------------------------------------


def test_suspended_put_replaces_only_the_null_version(d):
    enable(d)
    put(d, obj(n=1))
    enable(d, "Suspended")
    r = put(d, obj(n=2))
    assert r == WriteResult("null", "Suspended", None)
    r = put(d, obj(n=3))
    assert r.version_id == "null" and r.replaced == obj(n=2)
    assert ids(d) == ["null", vid(1)]


def test_suspended_delete_writes_a_null_marker_dropping_the_null_version(d):
    put(d, obj(n=1))
    enable(d)
    put(d, obj(n=2))
    enable(d, "Suspended")
    r = delete(d, marker=3)
    # A key has one null version: the null marker replaces it, current or not.
    assert r == DeleteResult("null", True, "Suspended", obj(n=1))
    assert ids(d) == ["null*", vid(2)]
    put(d, obj(n=4))  # replaces the null marker
    assert ids(d) == ["null", vid(2)]
    r = delete(d, marker=5)
    assert r.removed == obj(n=4) and ids(d) == ["null*", vid(2)]
    with pytest.raises(MethodNotAllowed):
        d.fsm.get_object("b", "k", "null")


# --- conditional writes -----------------------------------------------------------------------


def test_if_none_match_creates_only(d):
    put(d, obj(n=1), if_none_match=True)
    with pytest.raises(PreconditionFailed):
        put(d, obj(n=2), if_none_match=True)
    assert d.fsm.get_object("b", "k").version_id == vid(1)
    enable(d)
    delete(d, marker=3)
    put(d, obj(n=4), if_none_match=True)  # a delete marker is no current object
    assert d.fsm.get_object("b", "k").version_id == vid(4)


def test_if_match_compares_the_current_etag(d):
    with pytest.raises(NoSuchKey):
        put(d, obj(n=1), if_match=ETAG_A)
    put(d, obj(n=1, etag=ETAG_A))
    with pytest.raises(PreconditionFailed):
        put(d, obj(n=2), if_match=ETAG_B)
    put(d, obj(n=2, etag=ETAG_B), if_match=f'"{ETAG_A}"')
    put(d, obj(n=3), if_match="*")
    assert d.fsm.get_object("b", "k").version_id == vid(3)
    enable(d)
    delete(d, marker=4)
    with pytest.raises(NoSuchKey):
        put(d, obj(n=5), if_match=ETAG_A)


def test_compare_and_set_is_linear_under_retries(d):
    """A retried conditional PUT returns its first outcome instead of failing its own check."""
    first = d.outcome(c.PutObject(obj(n=1), if_none_match=True, client_id="g", seq=1, ack=1))
    again = d.outcome(c.PutObject(obj(n=1), if_none_match=True, client_id="g", seq=1, ack=1))
    assert first == again and first.error is None


# --- tags -------------------------------------------------------------------------------------


def test_object_tags_per_version(d):
    enable(d)
    put(d, obj(n=1, tags={"a": "1"}))
    put(d, obj(n=2))
    r = d.run(c.SetObjectTags("b", "k", {"x": "y"}))
    assert r == WriteResult(vid(2), "Enabled", None)
    assert d.fsm.get_object("b", "k").tags == {"x": "y"}
    assert d.fsm.get_object("b", "k", vid(1)).tags == {"a": "1"}
    d.run(c.SetObjectTags("b", "k", {}, version_id=vid(1)))
    assert d.fsm.get_object("b", "k", vid(1)).tags == {}
    assert ids(d) == [vid(2), vid(1)]  # order and ids unchanged
    with pytest.raises(NoSuchVersion):
        d.run(c.SetObjectTags("b", "k", {}, version_id=vid(9)))
    with pytest.raises(InvalidTag):
        d.run(c.SetObjectTags("b", "k", {f"k{i}": "v" for i in range(11)}))
    with pytest.raises(InvalidTag):
        put(d, obj(n=3, tags={"k" * 129: "v"}))
    delete(d, marker=4)
    with pytest.raises(NoSuchKey):
        d.run(c.SetObjectTags("b", "k", {"a": "b"}))


def test_bucket_tags(d):
    d.run(c.SetBucketTags("b", {"team": "x"}))
    assert d.fsm.get_bucket("b").tags == {"team": "x"}
    d.run(c.SetBucketTags("b", {}))
    assert d.fsm.get_bucket("b").tags == {}
    with pytest.raises(InvalidTag):
        d.run(c.SetBucketTags("b", {f"k{i}": "v" for i in range(51)}))


# --- listing ----------------------------------------------------------------------------------


def test_list_objects_skips_keys_whose_current_version_is_a_marker(d):
    enable(d)
    for i in range(5):
        put(d, obj(key=f"k{i}", n=10 + i))
    for i in (0, 2, 4):
        delete(d, key=f"k{i}", marker=20 + i)
    page = d.fsm.list_objects("b", max_keys=1)
    assert [v.key for v in page.contents] == ["k1"] and page.is_truncated
    page = d.fsm.list_objects("b", start_after=page.next_marker)
    assert [v.key for v in page.contents] == ["k3"] and not page.is_truncated


def test_list_object_versions_marks_latest_and_pages(d):
    enable(d)
    put(d, obj(key="a", n=1))
    put(d, obj(key="a", n=2))
    delete(d, key="b", marker=3)
    put(d, obj(key="c", n=4))
    page = d.fsm.list_object_versions("b", max_keys=2)
    assert [(v.key, v.s3_version_id, latest) for v, latest in zip(page.versions, page.latest)] == [
        ("a", vid(2), True), ("a", vid(1), False)]
    assert page.is_truncated and (page.next_key_marker, page.next_version_id_marker) == ("a", vid(1))
    page = d.fsm.list_object_versions("b", key_marker="a", version_id_marker=vid(1))
    assert [(v.key, v.delete_marker) for v in page.versions] == [("b", True), ("c", False)]
    assert not page.is_truncated


# --- snapshots --------------------------------------------------------------------------------


def populated() -> Driver:
    d = Driver()
    d.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    d.run(c.SetBucketTags("b", {"team": "x"}))
    put(d, obj(key="plain", n=1, tags={"t": "1"}))
    d.run(c.SetBucketVersioning("b", "Enabled"))
    for n in range(2, 6):
        put(d, obj(key="many", n=n))
    delete(d, key="gone", marker=6)
    put(d, obj(key="hidden", n=7))
    delete(d, key="hidden", marker=8)
    d.run(c.SetBucketVersioning("b", "Suspended"))
    put(d, obj(key="many", n=9))
    return d


def test_snapshot_carries_versions_markers_tags_and_state():
    d = populated()
    snap = d.fsm.snapshot()
    r = MetadataFSM.restore(snap)
    assert r.snapshot() == snap
    assert r.get_bucket("b") == d.fsm.get_bucket("b")
    assert r.list_object_versions("b") == d.fsm.list_object_versions("b")
    assert r.list_objects("b") == d.fsm.list_objects("b")
    assert r.get_object("b", "plain").tags == {"t": "1"}
    with pytest.raises(NoSuchKey):
        r.get_object("b", "hidden")
    # The restored machine goes on the same way.
    for drv in (d, Driver(r)):
        put(drv, obj(key="many", n=10))
        delete(drv, key="hidden", version_id=vid(8))
    assert d.fsm.snapshot() == r.snapshot()


def test_format_1_snapshot_restores_as_null_versions():
    v1 = "\n".join(json.dumps(x) for x in [
        {"v": 1, "kind": "metadata-fsm", "applied_index": 7, "epoch": 0},
        {"t": "bucket", "d": {"name": "b", "owner": "alice", "created": 1.0, "policy": "replica:3",
                              "consistency": "strong", "versioning": ""}},
        {"t": "objs", "b": "b", "rows": [["k", vid(1), 1, ETAG_A, 1700000001.0, "binary/octet-stream",
                                          "replica:3", ["n1", "n2"], 0, "alice", False, None]]},
        {"t": "end", "lines": 3},
    ]).encode() + b"\n"
    fsm = MetadataFSM.restore(v1)
    assert fsm.applied_index == 7
    v = fsm.get_object("b", "k")
    assert v == obj(n=1) and v.s3_version_id == "null"
    d = Driver(fsm)
    d.run(c.SetBucketVersioning("b", "Enabled"))
    put(d, obj(n=2))
    assert ids(d) == [vid(2), "null"]


def test_a_key_whose_versions_span_snapshot_lines(monkeypatch):
    import metadata.fsm.snapshot as fs

    monkeypatch.setattr(fs, "ROWS_PER_LINE", 3)
    d = Driver()
    d.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    d.run(c.SetBucketVersioning("b", "Enabled"))
    put(d, obj(key="a", n=1))
    for n in range(2, 10):
        put(d, obj(key="many", n=n))
    delete(d, key="many", marker=10)
    put(d, obj(key="z", n=11))
    snap = d.fsm.snapshot()
    assert snap.count(b'"t":"objs"') == 4  # 11 rows, 3 per line
    r = MetadataFSM.restore(snap)
    assert r.snapshot() == snap
    assert ids(Driver(r), "many") == [vid(10) + "*"] + [vid(n) for n in range(9, 1, -1)]
    assert [v.key for v in r.list_objects("b").contents] == ["a", "z"]
    dup = snap.replace(b'["z","', b'["a","', 1)
    with pytest.raises(fs.SnapshotFormatError):
        MetadataFSM.restore(dup)
