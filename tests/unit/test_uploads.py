"""The multipart-upload state machine: each command, its validation errors, the ETag and
checksum of a completed object, the garbage it reports, listing pages, snapshots."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metadata.api import commands as c
from metadata.fsm import part_codec, records
from metadata.api.commands import decode_command, encode_command
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.snapshot import SNAPSHOT_VERSION, SnapshotFormatError
from metadata.api.upload_records import MIN_PART_SIZE, CompletedUpload, MultipartUpload, UploadedPart
from metadata.fsm.uploads import MAX_COMPLETED, checksum_type_for, multipart_etag, object_checksum
from objstore.errors import (
    AccessDenied, BadDigest, BucketNotEmpty, EntityTooLarge, EntityTooSmall, InvalidArgument, InvalidPart,
    InvalidPartOrder, InvalidRequest, MalformedXML, NoSuchBucket, NoSuchKey, NoSuchUpload, PreconditionFailed,
)
from objstore.types import ObjectVersion, PartRef
from tests.unit.test_fsm import Driver

MIB = 1024**2


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def upload(key="k", uid="u1", **kw) -> MultipartUpload:
    base = dict(initiated=1700000000.0, owner="alice", content_type="text/plain",
                headers={"cache-control": "no-cache"}, user_meta={"color": "blue"})
    base.update(kw)
    return MultipartUpload("b", key, uid, **base)


def part(n: int, size: int = MIN_PART_SIZE, etag: str | None = None, vid: str | None = None, **kw) -> UploadedPart:
    ref = PartRef(n, vid or f"{n:016x}-gw1", size, etag or md5(b"%d" % n), ("s1", "s2", "s3"), **kw)
    return UploadedPart(ref, 1700000001.0 + n)


@pytest.fixture
def d() -> Driver:
    drv = Driver()
    drv.run(c.CreateBucket("b", "alice", "replica:3", 1700000000.0))
    drv.run(c.CreateMultipartUpload(upload()))
    return drv


def complete(d: Driver, rows, uid="u1", key="k", vid="v-final", checksums=None):
    return d.run(c.CompleteMultipartUpload("b", key, uid, rows, vid, 1700000100.0, checksums or {}))


# --- create, parts, abort ---------------------------------------------------------------------


def test_create_records_the_upload_and_refuses_unknown_bucket_or_other_owner(d):
    got = d.fsm.uploads.get("b", "k", "u1")
    assert got == upload() and got.user_meta == {"color": "blue"}
    with pytest.raises(NoSuchBucket):
        d.run(c.CreateMultipartUpload(MultipartUpload("nope", "k", "u2", 1.0, "alice")))
    with pytest.raises(AccessDenied):
        d.run(c.CreateMultipartUpload(upload(uid="u2", owner="mallory")))
    with pytest.raises(InvalidRequest):
        d.run(c.CreateMultipartUpload(upload()))  # the id is taken
    with pytest.raises(InvalidArgument):
        d.run(c.CreateMultipartUpload(upload(uid="u3", checksum_algorithm="md4")))
    assert d.fsm.counts()["uploads"] == 1


def test_checksum_type_defaults_and_refusals():
    assert checksum_type_for("", "") == ""
    assert checksum_type_for("crc32", "") == "COMPOSITE"
    assert checksum_type_for("crc64nvme", "") == "FULL_OBJECT"
    assert checksum_type_for("crc32c", "FULL_OBJECT") == "FULL_OBJECT"
    for alg, ctype in (("sha256", "FULL_OBJECT"), ("crc64nvme", "COMPOSITE"), ("", "COMPOSITE"), ("crc32", "X")):
        with pytest.raises(InvalidRequest):
            checksum_type_for(alg, ctype)


def test_put_part_replaces_and_returns_the_old_part(d):
    assert d.run(c.PutPart("b", "k", "u1", part(1))) is None
    newer = part(1, etag=md5(b"again"), vid="00000000000000ff-gw1")
    old = d.run(c.PutPart("b", "k", "u1", newer))
    assert old == part(1).part
    page = d.fsm.uploads.list_parts("b", "k", "u1")
    assert [p.part for p in page.parts] == [newer.part]


def test_put_part_errors(d):
    with pytest.raises(NoSuchUpload):
        d.run(c.PutPart("b", "k", "other", part(1)))
    with pytest.raises(NoSuchUpload):
        d.run(c.PutPart("b", "other-key", "u1", part(1)))
    for bad in (part(0), part(10001), part(1, etag="not-md5"), part(1, size=-1)):
        with pytest.raises(InvalidArgument):
            d.run(c.PutPart("b", "k", "u1", bad))
    with pytest.raises(EntityTooLarge):
        d.run(c.PutPart("b", "k", "u1", part(1, size=5 * 1024**3 + 1)))


def test_abort_returns_every_part_then_the_upload_is_gone(d):
    for n in (3, 1, 2):
        d.run(c.PutPart("b", "k", "u1", part(n)))
    garbage = d.run(c.AbortMultipartUpload("b", "k", "u1"))
    assert [p.number for p in garbage.parts] == [1, 2, 3]
    for cmd in (c.AbortMultipartUpload("b", "k", "u1"), c.PutPart("b", "k", "u1", part(4))):
        with pytest.raises(NoSuchUpload):
            d.run(cmd)
    with pytest.raises(NoSuchUpload):
        d.fsm.uploads.list_parts("b", "k", "u1")


def test_delete_bucket_discards_its_uploads_and_returns_their_parts(d):
    for n in (2, 1):
        d.run(c.PutPart("b", "k", "u1", part(n)))
    garbage = d.run(c.DeleteBucket("b", discard_uploads=True))
    assert [p.number for p in garbage.parts] == [1, 2]
    assert d.fsm.uploads.buckets == {}
    with pytest.raises(NoSuchUpload):
        d.fsm.uploads.list_parts("b", "k", "u1")


def test_bucket_with_an_object_and_uploads_is_not_empty(d):
    d.run(c.PutPart("b", "k", "u1", part(1)))
    d.run(c.PutObject(ObjectVersion("b", "other", "v1", 1, md5(b"o"), 1.0, placement=("s1",), owner="alice")))
    with pytest.raises(BucketNotEmpty):
        d.run(c.DeleteBucket("b", discard_uploads=True))
    assert [p.part.number for p in d.fsm.uploads.list_parts("b", "k", "u1").parts] == [1]


def test_a_delete_bucket_logged_without_discard_uploads_replays_as_it_was_applied(d):
    """A DeleteBucket from a log written before uploads were discarded (no field) still
    finds a bucket with uploads non-empty, so replaying old logs gives the same state."""
    old = decode_command(b'{"v": 1, "type": "DeleteBucket", "args": {"name": "b"}}')
    assert old == c.DeleteBucket("b") and not old.discard_uploads
    with pytest.raises(BucketNotEmpty):
        d.run(old)
    assert d.fsm.uploads.has_uploads("b")


# --- complete ---------------------------------------------------------------------------------


def test_complete_builds_the_object_from_its_parts(d):
    sizes = {1: MIN_PART_SIZE, 2: MIN_PART_SIZE + 7, 3: 10}
    for n, size in sizes.items():
        d.run(c.PutPart("b", "k", "u1", part(n, size)))
    done = complete(d, [[1, f'"{md5(b"1")}"', {}], [2, md5(b"2"), {}], [3, md5(b"3"), {}]])
    assert isinstance(done, CompletedUpload) and not done.replayed
    assert done.version.parts == ()  # the answer leaves the parts list to the index
    v = d.fsm.get_object("b", "k")
    assert done.version == dataclasses.replace(v, parts=())
    want_etag = hashlib.md5(b"".join(bytes.fromhex(md5(b"%d" % n)) for n in (1, 2, 3))).hexdigest() + "-3"
    assert v.etag == want_etag == multipart_etag([md5(b"1"), md5(b"2"), md5(b"3")])
    assert v.size == sum(sizes.values()) and v.version_id == "v-final" and v.placement == ()
    assert [p.number for p in v.parts] == [1, 2, 3] and v.parts[1].size == sizes[2]
    assert (v.content_type, v.user_meta, v.headers, v.owner) == ("text/plain", {"color": "blue"},
                                                                 {"cache-control": "no-cache"}, "alice")
    assert done.previous is None and done.unused == ()
    assert v.blob_refs() == tuple((p.version_id, p.placement) for p in v.parts)
    with pytest.raises(NoSuchUpload):
        d.fsm.uploads.get("b", "k", "u1")


def test_complete_reports_unlisted_parts_and_the_replaced_version(d):
    d.run(c.PutObject(ObjectVersion("b", "k", "v-old", 5, md5(b"x"), 1.0, placement=("s1",), owner="alice")))
    for n in (1, 2, 3, 4):
        d.run(c.PutPart("b", "k", "u1", part(n)))
    done = complete(d, [[1, md5(b"1"), {}], [3, md5(b"3"), {}]])
    assert [p.number for p in done.unused] == [2, 4]
    assert done.previous.version_id == "v-old"
    assert done.version.size == 2 * MIN_PART_SIZE


def test_complete_validation_errors_leave_the_upload_intact(d):
    d.run(c.PutPart("b", "k", "u1", part(1, size=MIN_PART_SIZE - 1)))
    d.run(c.PutPart("b", "k", "u1", part(2)))
    d.run(c.PutPart("b", "k", "u1", part(3)))
    cases = [
        ([[2, md5(b"2"), {}], [1, md5(b"1"), {}]], InvalidPartOrder),
        ([[1, md5(b"1"), {}], [1, md5(b"1"), {}]], InvalidPartOrder),
        ([[1, md5(b"1"), {}], [5, md5(b"5"), {}]], InvalidPart),
        ([[1, md5(b"wrong"), {}], [2, md5(b"2"), {}]], InvalidPart),
        ([[1, md5(b"1"), {}], [2, md5(b"2"), {}]], EntityTooSmall),
        ([], MalformedXML),
        ("junk", MalformedXML),
        ([["1", md5(b"1"), {}]], InvalidArgument),
    ]
    for rows, err in cases:
        with pytest.raises(err):
            complete(d, rows)
    assert len(d.fsm.uploads.list_parts("b", "k", "u1").parts) == 3
    with pytest.raises(NoSuchKey):
        d.fsm.get_object("b", "k")
    # A small part is fine as the last one.
    assert complete(d, [[2, md5(b"2"), {}], [3, md5(b"3"), {}]]).version.size == 2 * MIN_PART_SIZE


def test_entity_too_small_names_the_part(d):
    d.run(c.PutPart("b", "k", "u1", part(1, size=100)))
    d.run(c.PutPart("b", "k", "u1", part(2, size=100)))
    out = d.outcome(c.CompleteMultipartUpload("b", "k", "u1", [[1, md5(b"1"), {}], [2, md5(b"2"), {}]],
                                              "v", 1.0, {}))
    assert out.error["code"] == "EntityTooSmall"
    assert out.error["extra"]["PartNumber"] == 1 and out.error["extra"]["MinSizeAllowed"] == MIN_PART_SIZE


def test_completing_again_is_idempotent_while_the_object_is_current(d):
    d.run(c.PutPart("b", "k", "u1", part(1, size=10)))
    first = complete(d, [[1, md5(b"1"), {}]])
    again = complete(d, [[1, md5(b"1"), {}]], vid="v-other")
    assert again.replayed and again.version == first.version and again.unused == () and again.previous is None
    with pytest.raises(NoSuchUpload):
        complete(d, [[1, md5(b"1"), {}]], key="other-key")
    d.run(c.PutObject(ObjectVersion("b", "k", "v-new", 1, md5(b"n"), 2.0, placement=("s1",), owner="alice")))
    with pytest.raises(NoSuchUpload):  # the completed object was replaced
        complete(d, [[1, md5(b"1"), {}]])
    with pytest.raises(NoSuchUpload):
        complete(d, [[1, md5(b"1"), {}]], uid="never")


def test_complete_honours_put_conditions_and_keeps_the_upload_when_they_fail(d):
    d.run(c.PutPart("b", "k", "u1", part(1, size=10)))
    d.run(c.PutObject(ObjectVersion("b", "k", "v-old", 1, md5(b"o"), 1.0, placement=("s1",), owner="alice")))
    rows = [[1, md5(b"1"), {}]]
    for kw in ({"if_none_match": True}, {"if_match": md5(b"other")}):
        with pytest.raises(PreconditionFailed):
            d.run(c.CompleteMultipartUpload("b", "k", "u1", rows, "v", 2.0, {}, **kw))
    assert d.fsm.uploads.get("b", "k", "u1").key == "k"
    done = d.run(c.CompleteMultipartUpload("b", "k", "u1", rows, "v", 2.0, {}, if_match=f'"{md5(b"o")}"'))
    assert done.previous.version_id == "v-old" and d.fsm.get_object("b", "k").version_id == "v"


def test_completed_ids_are_remembered_up_to_a_bound(d):
    store = d.fsm.uploads
    for i in range(MAX_COMPLETED + 5):
        store.completed[("b", f"x{i}")] = ("k", "v")
    d.run(c.PutPart("b", "k", "u1", part(1, size=10)))
    complete(d, [[1, md5(b"1"), {}]])
    assert len(store.completed) == MAX_COMPLETED
    assert ("b", "u1") in store.completed and ("b", "x0") not in store.completed


def test_composite_checksum_over_the_part_checksums(d):
    d.run(c.CreateMultipartUpload(upload(uid="u2", checksum_algorithm="crc32", checksum_type="COMPOSITE")))
    bodies = [b"a" * 10, b"b" * 20]
    for n, body in enumerate(bodies, 1):
        d.run(c.PutPart("b", "k", "u2", part(n, size=MIN_PART_SIZE if n == 1 else 20, etag=md5(body),
                                           checksums={"crc32": crc32_b64(body)})))
    rows = [[n, md5(b), {"crc32": crc32_b64(b)}] for n, b in enumerate(bodies, 1)]
    with pytest.raises(InvalidPart):  # a checksum that does not match the part's
        complete(d, [rows[0], [2, md5(bodies[1]), {"crc32": crc32_b64(b"other")}]], uid="u2")
    v = complete(d, rows, uid="u2").version
    joined = b"".join(base64.b64decode(crc32_b64(b)) for b in bodies)
    assert v.checksums == {"crc32": crc32_b64(joined) + "-2"}


def test_full_object_crc_is_combined_from_the_parts(d):
    d.run(c.CreateMultipartUpload(upload(uid="u3", checksum_algorithm="crc32", checksum_type="FULL_OBJECT")))
    bodies = [bytes(range(256)) * 3, b"tail bytes"]
    for n, body in enumerate(bodies, 1):
        d.run(c.PutPart("b", "k", "u3", part(n, size=len(body) if n == 2 else MIN_PART_SIZE, etag=md5(body),
                                           checksums={"crc32": crc32_b64(body)})))
    # The sizes recorded drive the combination; make part 1's recorded size its real size.
    d.fsm.uploads.buckets["b"][("k", "u3")].parts[1] = part(1, size=len(bodies[0]), etag=md5(bodies[0]),
                                                            checksums={"crc32": crc32_b64(bodies[0])})
    parts = [p.part for p in d.fsm.uploads.list_parts("b", "k", "u3").parts]
    assert object_checksum("crc32", "FULL_OBJECT", parts) == crc32_b64(b"".join(bodies))
    d.fsm.uploads.buckets["b"][("k", "u3")].parts[1] = part(1, size=MIN_PART_SIZE, etag=md5(bodies[0]),
                                                            checksums={"crc32": crc32_b64(bodies[0])})
    rows = [[n, md5(b), {}] for n, b in enumerate(bodies, 1)]
    with pytest.raises(BadDigest):
        complete(d, rows, uid="u3", checksums={"crc32": crc32_b64(b"not it")})
    assert "-" not in complete(d, rows, uid="u3").version.checksums["crc32"]


def test_object_checksum_is_none_without_part_checksums():
    p = PartRef(1, "0000000000000001-g", 3, md5(b"abc"))
    assert object_checksum("crc32", "COMPOSITE", [p]) is None
    assert object_checksum("", "", [p]) is None
    bad = PartRef(1, "0000000000000001-g", 3, md5(b"abc"), checksums={"crc32": "%%%"})
    assert object_checksum("crc32", "COMPOSITE", [bad]) is None


def test_complete_refused_for_an_object_owner_mismatch_keeps_the_upload(d):
    d.run(c.PutPart("b", "k", "u1", part(1, size=10)))
    d.fsm.buckets["b"] = d.fsm.buckets["b"].__class__("b", "bob", 1.0)  # the bucket changed hands
    with pytest.raises(AccessDenied):
        complete(d, [[1, md5(b"1"), {}]])
    assert d.fsm.uploads.get("b", "k", "u1").owner == "alice"


# --- listing ----------------------------------------------------------------------------------


def keys_of(page):
    return [(u.key, u.upload_id) for u in page.uploads]


@pytest.fixture
def many() -> Driver:
    drv = Driver()
    drv.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    for key, uid in [("a", "1"), ("a", "2"), ("b/x", "3"), ("b/y", "4"), ("c", "5"), ("d/e/f", "6")]:
        drv.run(c.CreateMultipartUpload(MultipartUpload("b", key, uid, float(uid), "alice")))
    return drv


def test_list_uploads_orders_by_key_then_id_and_pages(many):
    st_ = many.fsm.uploads
    first = st_.list_uploads("b", max_uploads=3)
    assert keys_of(first) == [("a", "1"), ("a", "2"), ("b/x", "3")]
    assert first.is_truncated and (first.next_key_marker, first.next_upload_id_marker) == ("b/x", "3")
    rest = st_.list_uploads("b", key_marker="b/x", upload_id_marker="3")
    assert keys_of(rest) == [("b/y", "4"), ("c", "5"), ("d/e/f", "6")] and not rest.is_truncated
    assert keys_of(st_.list_uploads("b", key_marker="a", upload_id_marker="1"))[0] == ("a", "2")
    assert keys_of(st_.list_uploads("b", key_marker="a"))[0] == ("b/x", "3")
    assert keys_of(st_.list_uploads("b", prefix="b/")) == [("b/x", "3"), ("b/y", "4")]
    assert st_.list_uploads("b", max_uploads=0) .uploads == ()
    assert st_.list_uploads("nope").uploads == ()


def test_list_uploads_rolls_up_common_prefixes(many):
    st_ = many.fsm.uploads
    page = st_.list_uploads("b", delimiter="/")
    assert keys_of(page) == [("a", "1"), ("a", "2"), ("c", "5")]
    assert page.common_prefixes == ("b/", "d/")
    p1 = st_.list_uploads("b", delimiter="/", max_uploads=3)
    assert keys_of(p1) == [("a", "1"), ("a", "2")] and p1.common_prefixes == ("b/",)
    assert p1.is_truncated and (p1.next_key_marker, p1.next_upload_id_marker) == ("b/", None)
    p2 = st_.list_uploads("b", delimiter="/", key_marker=p1.next_key_marker)
    assert keys_of(p2) == [("c", "5")] and p2.common_prefixes == ("d/",) and not p2.is_truncated
    nested = st_.list_uploads("b", prefix="d/", delimiter="/")
    assert nested.common_prefixes == ("d/e/",) and nested.uploads == ()


def test_list_parts_pages_by_part_number(d):
    for n in (5, 1, 3, 2):
        d.run(c.PutPart("b", "k", "u1", part(n)))
    p1 = d.fsm.uploads.list_parts("b", "k", "u1", max_parts=2)
    assert [p.part.number for p in p1.parts] == [1, 2] and p1.is_truncated and p1.next_marker == 2
    p2 = d.fsm.uploads.list_parts("b", "k", "u1", marker=p1.next_marker, max_parts=2)
    assert [p.part.number for p in p2.parts] == [3, 5] and not p2.is_truncated and p2.next_marker == 5
    assert d.fsm.uploads.list_parts("b", "k", "u1", marker=5).parts == ()


def test_stale_finds_old_uploads_in_every_bucket(many):
    many.run(c.CreateBucket("z", "alice", "replica:3", 1.0))
    many.run(c.CreateMultipartUpload(MultipartUpload("z", "k", "9", 2.5, "alice")))
    assert [(u.bucket, u.upload_id) for u in many.fsm.uploads.stale(3.0)] == [("b", "1"), ("b", "2"), ("z", "9")]
    assert len(many.fsm.uploads.stale(100.0, limit=4)) == 4


# --- encoding, snapshots ----------------------------------------------------------------------


def test_commands_round_trip_their_encoding():
    cmds = [
        c.CreateMultipartUpload(upload(checksum_algorithm="sha256", checksum_type="COMPOSITE")),
        c.PutPart("b", "k", "u1", part(7, checksums={"crc32": "AAAAAA=="})),
        c.AbortMultipartUpload("b", "k", "u1"),
        c.CompleteMultipartUpload("b", "k", "u1", [[1, md5(b"1"), {"crc32": "AAAAAA=="}]], "v", 2.5, {"crc32": "x"}),
    ]
    for cmd in cmds:
        assert decode_command(encode_command(cmd)) == cmd


def test_snapshot_restores_uploads_and_completed_ids(d):
    d.run(c.PutPart("b", "k", "u1", part(1, checksums={"crc32": "AAAAAA=="})))
    d.run(c.CreateMultipartUpload(upload(key="k2", uid="u2")))
    d.run(c.PutPart("b", "k2", "u2", part(1, size=10)))
    complete(d, [[1, md5(b"1"), {}]], uid="u2", key="k2")
    snap = d.fsm.snapshot()
    back = MetadataFSM.restore(snap)
    assert back.snapshot() == snap
    assert back.uploads.list_parts("b", "k", "u1") == d.fsm.uploads.list_parts("b", "k", "u1")
    assert back.get_object("b", "k2").parts == d.fsm.get_object("b", "k2").parts
    d2 = Driver(back)
    assert complete(d2, [[1, md5(b"1"), {}]], uid="u2", key="k2").replayed


def test_version_1_snapshot_without_uploads_still_restores(d):
    snap = d.fsm.snapshot()
    lines = [ln for ln in snap.splitlines(keepends=True) if b'"t":"upload"' not in ln and b'"t":"completed"' not in ln]
    assert b'"v":%d' % SNAPSHOT_VERSION in lines[0]
    lines[0] = lines[0].replace(b'"v":%d' % SNAPSHOT_VERSION, b'"v":1')
    lines[-1] = b'{"t":"end","lines":%d}\n' % (len(lines) - 1)
    old = MetadataFSM.restore(b"".join(lines))
    assert old.uploads.count() == 0 and old.get_bucket("b").owner == "alice"
    with pytest.raises(SnapshotFormatError):
        MetadataFSM.restore(snap.replace(b'"t":"upload"', b'"t":"bogus"'))


def test_listing_omits_parts_lists(d):
    d.run(c.PutPart("b", "k", "u1", part(1, size=10)))
    complete(d, [[1, md5(b"1"), {}]])
    listed = d.fsm.list_objects("b").contents[0]
    assert listed.parts == () and listed.etag.endswith("-1") and listed.size == 10


# --- the compact parts codec ------------------------------------------------------------------

_part_refs = st.builds(
    PartRef,
    number=st.integers(1, 10000),
    version_id=st.one_of(st.from_regex(r"\A[0-9a-f]{16}-[a-z0-9]{1,8}\Z"), st.text(min_size=1, max_size=40)),
    size=st.integers(0, 2**63 - 1),
    etag=st.binary(min_size=16, max_size=16).map(bytes.hex),
    placement=st.lists(st.text(min_size=1, max_size=6), max_size=4).map(tuple),
    checksums=st.dictionaries(st.sampled_from(["crc32", "sha256"]), st.text(max_size=60), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_part_refs, max_size=30).map(tuple))
def test_parts_codec_round_trips(parts):
    assert part_codec.unpack(part_codec.pack(parts)) == parts


def test_parts_codec_is_compact_and_refuses_bad_parts():
    parts = tuple(PartRef(n, f"{n:016x}-gw1", 8 * MIB, md5(b"%d" % n), ("s1", "s4", "s5")) for n in range(1, 10001))
    text = part_codec.pack(parts)
    assert len(text) / len(parts) < 60
    atoms = records.Atoms()
    v = ObjectVersion("b", "k", "v", 10000 * 8 * MIB, "x-10000", 1.0, parts=parts)
    assert records.decode("b", "k", records.encode(v, atoms), atoms) == v
    for bad in (PartRef(0, "v", 1, md5(b"")), PartRef(1, "v", 1, "xyz"), PartRef(1, "", 1, md5(b"")),
                PartRef(1, "v", 1, md5(b""), ("n" * 300,))):
        with pytest.raises(InvalidArgument):
            part_codec.pack((bad,))
    with pytest.raises(ValueError):
        part_codec.unpack("AQ==")
