"""The metadata state machine: each command, its errors, de-duplication, epochs, snapshots."""
from __future__ import annotations

import json

import pytest

from metadata.api import commands as c
from metadata.api.commands import Outcome, decode_command, decode_logged_command, encode_command
from metadata.api.upload_records import PartList
from metadata.fsm.machine import MAX_RESULTS, MetadataFSM
from metadata.fsm.snapshot import SNAPSHOT_VERSION, SnapshotFormatError
from objstore.errors import (
    AccessDenied, BucketAlreadyExists, BucketAlreadyOwnedByYou, BucketNotEmpty, FormatTooNew, InvalidArgument,
    InvalidRequest, KeyTooLongError, NoSuchBucket, NoSuchKey,
)
from objstore.types import Bucket, ClusterMap, Credential, NodeInfo, ObjectVersion


class Driver:
    """Applies commands at increasing indexes, like a log would."""

    def __init__(self, fsm: MetadataFSM | None = None) -> None:
        self.fsm = fsm or MetadataFSM()
        self.index = self.fsm.applied_index

    def outcome(self, cmd: c.Command) -> Outcome:
        self.index += 1
        return self.fsm.apply(self.index, cmd)

    def run(self, cmd: c.Command):
        return self.outcome(cmd).result(type(cmd))


def version(bucket="b", key="k", vid="v1", **kw) -> ObjectVersion:
    base = dict(size=10, etag="0123456789abcdef0123456789abcdef", last_modified=1700000000.5,
                placement=("n1", "n2", "n3"), ring_epoch=3, owner="alice")
    base.update(kw)
    return ObjectVersion(bucket=bucket, key=key, version_id=vid, **base)


@pytest.fixture
def d() -> Driver:
    drv = Driver()
    drv.run(c.CreateBucket("b", "alice", "replica:3", 1700000000.0))
    return drv


# --- cluster map ------------------------------------------------------------------------------


def test_register_node_bumps_epoch_only_on_ring_changes():
    d = Driver()
    n1 = NodeInfo("n1", "127.0.0.1:1001")
    m = d.run(c.RegisterNode(n1))
    assert isinstance(m, ClusterMap) and m.epoch == 1 and m.nodes == (n1,)
    assert d.run(c.RegisterNode(n1)).epoch == 1  # unchanged: no bump
    used = NodeInfo("n1", "127.0.0.1:1001", used_bytes=500)
    m = d.run(c.RegisterNode(used))
    assert m.epoch == 1 and m.node("n1").used_bytes == 500  # usage only: stored, no bump
    m = d.run(c.RegisterNode(NodeInfo("n1", "127.0.0.1:2002")))
    assert m.epoch == 2 and m.node("n1").address == "127.0.0.1:2002"
    m = d.run(c.RegisterNode(NodeInfo("n0", "127.0.0.1:1000", zone="z2")))
    assert m.epoch == 3 and [n.node_id for n in m.nodes] == ["n0", "n1"]


def test_set_node_state():
    d = Driver()
    d.run(c.RegisterNode(NodeInfo("n1", "h:1")))
    m = d.run(c.SetNodeState("n1", "draining"))
    assert m.epoch == 2 and m.node("n1").state == "draining"
    assert d.run(c.SetNodeState("n1", "draining")).epoch == 2
    with pytest.raises(InvalidArgument):
        d.run(c.SetNodeState("n1", "sleeping"))
    with pytest.raises(InvalidArgument):
        d.run(c.SetNodeState("nope", "down"))
    assert d.fsm.cluster_map().epoch == 2


# --- buckets ----------------------------------------------------------------------------------


def test_create_bucket_and_conflicts(d):
    assert d.fsm.get_bucket("b") == Bucket("b", "alice", 1700000000.0, "replica:3")
    with pytest.raises(BucketAlreadyOwnedByYou):
        d.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    with pytest.raises(BucketAlreadyExists):
        d.run(c.CreateBucket("b", "bob", "replica:3", 1.0))
    with pytest.raises(InvalidArgument):
        d.run(c.CreateBucket("x", "bob", "mirror:2", 1.0))
    got = d.run(c.CreateBucket("a", "bob", "ec:4+2", 2.0))
    assert got == Bucket("a", "bob", 2.0, "ec:4+2")
    assert [b.name for b in d.fsm.list_buckets()] == ["a", "b"]
    assert [b.name for b in d.fsm.list_buckets(owner="bob")] == ["a"]


def test_delete_bucket(d):
    with pytest.raises(NoSuchBucket):
        d.run(c.DeleteBucket("zzz"))
    d.run(c.PutObject(version()))
    with pytest.raises(BucketNotEmpty):
        d.run(c.DeleteBucket("b"))
    d.run(c.DeleteObject("b", "k"))
    assert d.run(c.DeleteBucket("b")) == PartList(())  # no uploads were discarded
    with pytest.raises(NoSuchBucket):
        d.fsm.get_bucket("b")


# --- credentials ------------------------------------------------------------------------------


def test_credentials():
    d = Driver()
    cred = Credential("AK1", "secret", "alice", "Alice")
    assert d.run(c.PutCredential(cred)) is None
    assert d.fsm.get_credential("AK1") == cred
    d.run(c.PutCredential(Credential("AK0", "s0", "bob")))
    assert [x.access_key for x in d.fsm.list_credentials()] == ["AK0", "AK1"]
    d.run(c.DeleteCredential("AK1"))
    d.run(c.DeleteCredential("AK1"))
    assert d.fsm.get_credential("AK1") is None


# --- objects ----------------------------------------------------------------------------------


def test_put_object_returns_previous_version(d):
    v1 = version(vid="v1", headers={"cache-control": "no"}, user_meta={"a": "b"}, checksums={"crc32": "x=="})
    assert d.run(c.PutObject(v1)).replaced is None
    assert d.fsm.get_object("b", "k") == v1
    v2 = version(vid="v2", etag="abc-3", content_type="text/plain", delete_marker=False)
    assert d.run(c.PutObject(v2)).replaced == v1
    assert d.fsm.get_object("b", "k") == v2


def test_put_object_errors(d):
    with pytest.raises(NoSuchBucket):
        d.run(c.PutObject(version(bucket="nope")))
    with pytest.raises(KeyTooLongError):
        d.run(c.PutObject(version(key="x" * 1025)))
    with pytest.raises(InvalidArgument):
        d.run(c.PutObject(version(size=-1)))
    d.run(c.PutObject(version(key="é" * 512)))  # 1024 bytes exactly


def test_delete_object_is_idempotent(d):
    v = version()
    d.run(c.PutObject(v))
    assert d.run(c.DeleteObject("b", "k")).removed == v
    assert d.run(c.DeleteObject("b", "k")).removed is None
    with pytest.raises(NoSuchKey):
        d.fsm.get_object("b", "k")
    with pytest.raises(NoSuchBucket):
        d.run(c.DeleteObject("nope", "k"))
    with pytest.raises(NoSuchBucket):
        d.fsm.get_object("nope", "k")


def test_odd_keys_and_listing(d):
    keys = ["a/b/c", "a/d", "sp ace", "q?x#y%z", "../up", "é/ü", "\U0001f600", "a\nb"]
    for k in keys:
        d.run(c.PutObject(version(key=k, vid="v-" + k)))
    for k in keys:
        assert d.fsm.get_object("b", k).version_id == "v-" + k
    res = d.fsm.list_objects("b", delimiter="/", max_keys=1000)
    assert res.common_prefixes == ("../", "a/", "é/")
    assert [v.key for v in res.contents] == sorted(["sp ace", "q?x#y%z", "\U0001f600", "a\nb"])
    page = d.fsm.list_objects("b", prefix="a/", max_keys=1)
    assert [v.key for v in page.contents] == ["a/b/c"] and page.is_truncated and page.next_marker == "a/b/c"
    with pytest.raises(NoSuchBucket):
        d.fsm.list_objects("nope")


def test_listing_wire_form_reads_back_as_the_listing(d):
    """The HTTP listing is built from the records without decoding them into versions, and
    leaves out fields at their default: read back, it equals the in-process listing."""
    from objstore.types import ListResult, PartRef

    d.run(c.SetBucketVersioning("b", "Enabled"))
    d.run(c.PutObject(version(key="plain", vid="v1")))
    d.run(c.PutObject(version(key="plain", vid="v2", content_type="text/plain", headers={"cache-control": "no"},
                              user_meta={"a": "1"}, checksums={"crc32": "AAAAAA=="}, tags={"t": "x"},
                              public_read=True, policy="ec:4+2;stripe=1048576", ring_epoch=0, owner="")))
    d.run(c.PutObject(version(key="multi", vid="v3", placement=(),
                              parts=(PartRef(1, "p1", 5, "0" * 32, ("n1",)), PartRef(2, "p2", 5, "1" * 32, ("n2",))))))
    d.run(c.PutObject(version(key="gone", vid="v4")))
    d.run(c.DeleteObject("b", "gone", marker_id="m1", now=2.0))
    d.run(c.SetBucketVersioning("b", "Suspended"))
    d.run(c.PutObject(version(key="null", vid="v5", size=0, placement=("", "n2"))))
    for prefix, delimiter, start_after, max_keys in (("", None, None, 1000), ("", None, "multi", 2), ("m", "u", None, 5),
                                                     ("", None, None, 0)):
        want = d.fsm.list_objects("b", prefix, delimiter, start_after, max_keys)
        wire = d.fsm.list_objects_dict("b", prefix, delimiter, start_after, max_keys)
        assert ListResult.from_dict(wire) == want
    listed = d.fsm.list_objects_dict("b")["contents"]
    assert [e["key"] for e in listed] == ["multi", "null", "plain"]
    assert "parts" not in listed[0] and "headers" not in listed[1] and "policy" not in listed[1]
    assert listed[2]["public_read"] is True and listed[2]["policy"] == "ec:4+2;stripe=1048576"
    with pytest.raises(NoSuchBucket):
        d.fsm.list_objects_dict("nope")


def test_listing_rows_form_reads_back_as_the_listing(d):
    """The compact rows form of a listing page (written as JSON text from the records) reads
    back as the in-process listing, and its text is what json.dumps makes of the same page."""
    import json

    from metadata.api.page_rows import read_page
    from metadata.fsm import page_rows
    from objstore.listing import list_page
    from objstore.types import PartRef

    d.run(c.SetBucketVersioning("b", "Enabled"))
    d.run(c.PutObject(version(key="plain", vid="v1")))
    d.run(c.PutObject(version(key="plain", vid="v2", content_type="text/plain", headers={"cache-control": "no"},
                              user_meta={"a": "1"}, checksums={"crc32": "AAAAAA=="}, tags={"t": "x"},
                              public_read=True, policy="ec:4+2;stripe=1048576", ring_epoch=0, owner="")))
    d.run(c.PutObject(version(key="multi", vid="v3", placement=(), etag="not-md5-\"quoted\"",
                              parts=(PartRef(1, "p1", 5, "0" * 32, ("n1",)), PartRef(2, "p2", 5, "1" * 32, ("n2",))))))
    d.run(c.PutObject(version(key="gone", vid="v4")))
    d.run(c.DeleteObject("b", "gone", marker_id="m1", now=2.0))
    d.run(c.SetBucketVersioning("b", "Suspended"))
    d.run(c.PutObject(version(key="null", vid="v5", size=0, placement=("", "n2"))))
    for k in ("é/ü", "\U0001f600", "a\nb", 'q"\\x', "sp ace/x"):
        d.run(c.PutObject(version(key=k, vid="v-" + k, last_modified=1e300)))
    for prefix, delimiter, start_after, max_keys in (("", None, None, 1000), ("", None, "multi", 2), ("m", "u", None, 5),
                                                     ("", None, None, 0), ("", "/", None, 1000), ("", "/", "a", 3)):
        want = d.fsm.list_objects("b", prefix, delimiter, start_after, max_keys)
        text = d.fsm.list_objects_rows("b", prefix, delimiter, start_after, max_keys)
        assert read_page(json.loads(text)) == want
        idx = d.fsm._index("b")
        page = list_page(idx.live, prefix, delimiter, start_after, max_keys)
        entries = [(k, v if isinstance(v, bytes) else v[0]) for k, v in page.entries]
        plain = page_rows.page_dict("b", entries, idx.atoms, page.common_prefixes, page.is_truncated,
                                    page.next_marker)
        assert text == json.dumps(plain, separators=(",", ":"))
    text = d.fsm.list_objects_rows("b", local={"node_id": "m1"})
    assert json.loads(text)["local"] == {"node_id": "m1"}
    rows = json.loads(d.fsm.list_objects_rows("b"))["rows"]
    assert [len(r) for r in rows if r[0] == "plain"] == [7] and all(len(r) == 6 for r in rows if r[0] != "plain")
    assert read_page(d.fsm.list_objects_dict("b")) == d.fsm.list_objects("b")  # the older form reads too
    with pytest.raises(NoSuchBucket):
        d.fsm.list_objects_rows("nope")


def test_counts(d):
    for i in range(5):
        d.run(c.PutObject(version(key=f"k{i}")))
    assert d.fsm.counts()["objects"] == 5 and d.fsm.counts()["buckets"] == 1


# --- exactly-once -----------------------------------------------------------------------------


def test_retried_command_returns_remembered_result_without_reapplying(d):
    v1 = version(vid="v1")
    first = d.outcome(c.PutObject(v1, client_id="g1", seq=1, ack=1))
    d.run(c.PutObject(version(vid="v2"), client_id="g1", seq=2, ack=1))
    retry = d.outcome(c.PutObject(v1, client_id="g1", seq=1, ack=1))
    assert retry == first and retry.value["replaced"] is None
    assert d.fsm.get_object("b", "k").version_id == "v2"  # not applied twice


def test_retried_failure_returns_the_same_error():
    d = Driver()
    create = c.CreateBucket("b", "alice", "replica:3", 1.0, client_id="g", seq=1, ack=1)
    assert d.run(create).name == "b"
    # A retry of the successful create returns the bucket, not BucketAlreadyOwnedByYou.
    assert d.run(create).name == "b"
    again = c.CreateBucket("b", "alice", "replica:3", 1.0, client_id="g", seq=2, ack=2)
    with pytest.raises(BucketAlreadyOwnedByYou):
        d.run(again)
    with pytest.raises(BucketAlreadyOwnedByYou):
        d.run(again)


def test_acknowledged_commands_are_forgotten_and_stale_retries_refused(d):
    d.run(c.PutObject(version(vid="v1"), client_id="g", seq=1, ack=1))
    d.run(c.PutObject(version(vid="v2"), client_id="g", seq=2, ack=2))
    assert set(d.fsm.sessions["g"].results) == {2}
    with pytest.raises(InvalidRequest):
        d.run(c.PutObject(version(vid="v1"), client_id="g", seq=1, ack=1))
    assert d.fsm.get_object("b", "k").version_id == "v2"


def test_session_results_are_bounded(d):
    for seq in range(1, MAX_RESULTS + 3):
        d.run(c.DeleteObject("b", "k", client_id="g", seq=seq, ack=1))
    assert len(d.fsm.sessions["g"].results) == MAX_RESULTS
    session = d.fsm.sessions["g"]
    assert min(session.results) == 3 and session.floor == 3  # the two oldest dropped


def test_session_bound_drops_the_oldest_seq_when_commands_commit_out_of_order(d):
    seqs = [2, 1] + list(range(3, MAX_RESULTS + 3))
    for seq in seqs:
        d.run(c.DeleteObject("b", "k", client_id="g", seq=seq, ack=1))
    session = d.fsm.sessions["g"]
    assert len(session.results) == MAX_RESULTS
    assert min(session.results) == 3 and session.floor == 3
    assert 1 not in session.results and 2 not in session.results


def test_commands_without_session_are_not_remembered(d):
    d.run(c.PutObject(version()))
    assert d.fsm.sessions == {}


# --- encoding ---------------------------------------------------------------------------------


def test_every_command_round_trips_through_its_encoding():
    cmds = [
        c.Noop(),
        c.RegisterNode(NodeInfo("n1", "h:1", zone="z", weight=2.5, capacity_bytes=9)),
        c.SetNodeState("n1", "down", client_id="x", seq=3, ack=2),
        c.CreateBucket("b", "o", "ec:4+2", 5.5, consistency="quorum"),
        c.DeleteBucket("b"),
        c.PutCredential(Credential("ak", "sk", "o", "O")),
        c.DeleteCredential("ak"),
        c.PutObject(version(key="odd ?#%/.. ü", headers={"h": "1"})),
        c.DeleteObject("b", "k"),
    ]
    for cmd in cmds:
        data = encode_command(cmd)
        assert decode_command(data) == cmd
        assert encode_command(decode_command(data)) == data


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"v": 2, "type": "Noop", "args": {}}',
        b'{"v": 1, "type": "Explode", "args": {}}',
        b'{"v": 1, "type": "DeleteBucket", "args": {}}',
        b'{"v": 1, "type": "DeleteBucket", "args": {"name": 5}}',
        b'{"v": 1, "type": "DeleteBucket", "args": {"name": "\\ud800"}}',
        b'{"v": 1, "type": "SetNodeState", "seq": "1", "args": {"node_id": "a", "state": "up"}}',
        b'{"v": 1, "type": "PutObject", "args": {"version": {"bucket": "b"}}}',
    ],
)
def test_malformed_commands_are_refused(raw):
    with pytest.raises(InvalidArgument):
        decode_command(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v": 1, "type": "PutObject", "args": {"version": {"bucket": "b", "key": "caf\\u00e9 \\u2603",'
        b' "version_id": "v", "size": 1, "etag": "e", "last_modified": 1.0, "tags": {"t\\u00fc": "\\u00e9"}}}}',
        b'{"v": 1, "type": "SetBucketTags", "args": {"name": "b", "tags": {"\\u00fc": "x"}}}',
    ],
)
def test_commands_with_text_beyond_ascii_are_accepted(raw):
    cmd = decode_command(raw)
    assert encode_command(decode_command(encode_command(cmd))) == encode_command(cmd)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"v": 1, "type": "SetBucketTags", "args": {"name": "b", "tags": {"\\ud800": "x"}}}',
        b'{"v": 1, "type": "SetBucketTags", "args": {"name": "b", "tags": {"x": "\\udfff"}}}',
        b'{"v": 1, "type": "SetBucketTags", "args": {"name": "b", "tags": {"x": 1}}}',
        b'{"v": 1, "type": "PutObject", "args": {"version": {"bucket": "b", "key": "\\u00e9\\ud800",'
        b' "version_id": "v", "size": 1, "etag": "e", "last_modified": 1.0}}}',
        b'{"v": 1, "type": "PutObject", "args": {"version": {"bucket": "b", "key": "k",'
        b' "version_id": "v", "size": true, "etag": "e", "last_modified": 1.0}}}',
        b'{"v": 1, "type": "MarkCollectable", "args": {"floor": false}}',
    ],
)
def test_fields_of_the_wrong_type_are_refused_beyond_ascii_too(raw):
    with pytest.raises(InvalidArgument):
        decode_command(raw)


def test_a_logged_command_is_decoded_without_the_field_checks_but_not_its_structure():
    """Entries of the Raft log were checked when proposed (decode_logged_command)."""
    unchecked = b'{"v": 1, "type": "DeleteBucket", "args": {"name": 5}}'
    with pytest.raises(InvalidArgument):
        decode_command(unchecked)
    assert decode_logged_command(unchecked) == c.DeleteBucket(5)  # type: ignore[arg-type]
    cmd = c.PutObject(version(key="k \u00fc"), client_id="g", seq=2, ack=1)
    assert decode_logged_command(encode_command(cmd)) == cmd
    for raw in (b"not json", b'{"v": 2, "type": "Noop", "args": {}}', b'{"v": 1, "type": "Explode", "args": {}}',
                b'{"v": 1, "type": "DeleteBucket", "args": {}}',
                b'{"v": 1, "type": "PutObject", "args": {"version": {"bucket": "b"}}}'):
        with pytest.raises(InvalidArgument):
            decode_logged_command(raw)


# --- snapshots --------------------------------------------------------------------------------


def populated() -> Driver:
    d = Driver()
    d.run(c.RegisterNode(NodeInfo("n1", "h:1")))
    d.run(c.RegisterNode(NodeInfo("n2", "h:2", zone="z2")))
    d.run(c.SetNodeState("n2", "draining"))
    d.run(c.CreateBucket("b", "alice", "replica:3", 1.0, client_id="g", seq=1, ack=1))
    d.run(c.CreateBucket("e", "bob", "ec:2+1", 2.0))
    d.run(c.PutCredential(Credential("AK", "SK", "alice")))
    for i in range(50):
        d.run(c.PutObject(version(key=f"dir/{i}\n", vid=f"v{i}", user_meta={"i": str(i)}), client_id="g", seq=i + 2, ack=2))
    d.run(c.PutObject(version(bucket="e", key="x", etag="weird-etag", policy="ec:2+1", owner="bob")))
    return d


def test_snapshot_restore_gives_identical_state():
    d = populated()
    snap = d.fsm.snapshot()
    restored = MetadataFSM.restore(snap)
    assert restored.snapshot() == snap
    assert restored.applied_index == d.fsm.applied_index
    assert restored.cluster_map() == d.fsm.cluster_map()
    assert restored.list_buckets() == d.fsm.list_buckets()
    assert restored.list_objects("b") == d.fsm.list_objects("b")
    assert restored.get_object("e", "x") == d.fsm.get_object("e", "x")
    assert restored.list_credentials() == d.fsm.list_credentials()
    # The remembered outcomes survive too: a retry after restore is still de-duplicated.
    r = Driver(restored)
    before = restored.get_object("b", "dir/7\n")
    retry = r.outcome(c.PutObject(version(key="dir/7\n", vid="other"), client_id="g", seq=9, ack=2))
    assert retry == d.fsm.sessions["g"].results[9]
    assert restored.get_object("b", "dir/7\n") == before and before.version_id == "v7"


def test_snapshot_rows_are_the_json_of_the_records_rows():
    """A snapshot writes each record's row as text (records.row_json): byte for byte what
    json.dumps makes of records.to_row, for every kind of record."""
    import json

    from metadata.fsm import records
    from objstore.types import PartRef

    d = populated()
    d.run(c.SetBucketVersioning("b", "Enabled"))
    d.run(c.PutObject(version(key="é/ü\U0001f600", vid="v-é", etag='q"\\', content_type="text/plain; é",
                              headers={"cache-control": "no"}, checksums={"crc32": "AAAAAA=="}, tags={"t": "ü"},
                              public_read=True, policy="ec:4+2;stripe=1048576", ring_epoch=0, owner="",
                              last_modified=1e300, placement=("", "n2"))))
    d.run(c.PutObject(version(key="multi", vid="v3", placement=(), size=0,
                              parts=(PartRef(1, "p1", 5, "0" * 32, ("n1",)), PartRef(2, "p2", 5, "1" * 32, ("n2",))))))
    d.run(c.DeleteObject("b", "multi", marker_id="m1", now=2.0))
    d.run(c.SetBucketVersioning("b", "Suspended"))
    d.run(c.DeleteObject("b", "dir/3\n", marker_id="m2", now=3.0))
    mids: dict = {}
    seen = 0
    for name in ("b", "e"):
        idx = d.fsm._index(name)
        for key, versions in idx.versions_from(""):
            for rec in versions:
                want = json.dumps(records.to_row(key, rec, idx.atoms), ensure_ascii=False, separators=(",", ":"))
                assert records.row_json(key, rec, idx.atoms, mids) == want
                seen += 1
    assert seen == 54 and len(mids) >= 4
    restored = MetadataFSM.restore(d.fsm.snapshot())
    assert restored.snapshot() == d.fsm.snapshot()
    assert restored.list_object_versions("b") == d.fsm.list_object_versions("b")


def test_snapshot_encoding_pauses_after_each_64_kib_when_asked():
    """With ``pause_s`` the encoder sleeps after each PAUSE_EVERY_BYTES of encoded lines
    (letting go of the GIL for the event loop), not after every small line; the bytes are the
    same, and without it it never sleeps."""
    from metadata.fsm import snapshot

    d = populated()
    for i in range(3 * snapshot.ROWS_PER_LINE + 5):
        d.run(c.PutObject(version(key=f"many/{i:05d}")))
    small = b"".join(snapshot.frozen_chunks(snapshot.freeze(populated().fsm), pause_s=0.001,
                                            sleep=(small_slept := []).append))
    assert small.count(b"\n") > 3 and small_slept == []  # a small state: no pause at all
    slept: list[float] = []
    paced = b"".join(snapshot.frozen_chunks(snapshot.freeze(d.fsm), pause_s=0.001, sleep=slept.append))
    # at least once after each full line of records (over 64 KiB each), at most once per 64 KiB
    assert 3 <= len(slept) <= len(paced) // snapshot.PAUSE_EVERY_BYTES
    assert slept and set(slept) == {0.001}
    unpaced: list[float] = []
    assert b"".join(snapshot.frozen_chunks(snapshot.freeze(d.fsm), sleep=unpaced.append)) == paced
    assert unpaced == []


def test_restored_machine_evolves_like_the_original():
    a = populated()
    b = Driver(MetadataFSM.restore(a.fsm.snapshot()))
    for drv in (a, b):
        drv.run(c.PutObject(version(key="new")))
        drv.run(c.RegisterNode(NodeInfo("n3", "h:3")))
    assert a.fsm.snapshot() == b.fsm.snapshot()


def test_truncated_or_unknown_snapshot_is_refused():
    snap = populated().fsm.snapshot()
    with pytest.raises(SnapshotFormatError):
        MetadataFSM.restore(snap[: len(snap) // 2].rsplit(b"\n", 1)[0] + b"\n")
    with pytest.raises(FormatTooNew, match="newer objstore"):  # newer, not damaged: refused by name
        MetadataFSM.restore(snap.replace(b'"v":%d' % SNAPSHOT_VERSION, b'"v":9', 1))
    with pytest.raises(SnapshotFormatError):
        MetadataFSM.restore(b"")


def _objs_lines(snap: bytes) -> tuple[list[bytes], list[int]]:
    lines = snap.splitlines(keepends=True)
    return lines, [i for i, line in enumerate(lines) if line.startswith(b'{"t":"objs"')]


def test_snapshot_rows_out_of_order_still_restore_and_a_key_twice_is_refused():
    """The restore builds each index in one go from the rows: rows in another key order
    (not what a snapshot writes) give the same state; a key listed twice is damage."""
    d = populated()
    snap = d.fsm.snapshot()
    lines, objs = _objs_lines(snap)
    assert objs
    i = objs[0]
    line = json.loads(lines[i])
    line["rows"].reverse()  # one key per row here: each key's versions stay together
    shuffled = b"".join(lines[:i] + [json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"]
                        + lines[i + 1:])
    assert shuffled != snap
    assert MetadataFSM.restore(shuffled).snapshot() == snap
    line["rows"].append(line["rows"][0])
    doubled = b"".join(lines[:i] + [json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"]
                       + lines[i + 1:])
    with pytest.raises(SnapshotFormatError, match="appears twice"):
        MetadataFSM.restore(doubled)


def test_apply_out_of_order_is_a_bug():
    fsm = MetadataFSM()
    fsm.apply(1, c.Noop())
    with pytest.raises(ValueError):
        fsm.apply(1, c.Noop())


def test_put_object_by_someone_other_than_the_bucket_owner_is_refused(d):
    with pytest.raises(AccessDenied):
        d.run(c.PutObject(version(owner="mallory")))
    with pytest.raises(NoSuchKey):
        d.fsm.get_object("b", "k")
    d.run(c.PutObject(version(owner="alice")))
    assert d.fsm.get_object("b", "k").owner == "alice"


def test_acknowledging_forgets_exactly_the_lower_seqs_in_any_commit_order(d):
    """Outcomes remembered out of seq order are forgotten as exactly as in-order ones."""
    for seq in (3, 1, 2, 5, 4):
        d.run(c.PutObject(version(key=f"k{seq}", vid=f"v{seq}"), client_id="g", seq=seq, ack=1))
    assert list(d.fsm.sessions["g"].results) == [3, 1, 2, 5, 4]
    d.run(c.PutObject(version(key="k6", vid="v6"), client_id="g", seq=6, ack=3))
    assert list(d.fsm.sessions["g"].results) == [3, 5, 4, 6]
    d.run(c.PutObject(version(key="k7", vid="v7"), client_id="g", seq=7, ack=5))
    assert list(d.fsm.sessions["g"].results) == [5, 6, 7]
    for seq in (8, 9):
        d.run(c.PutObject(version(key=f"k{seq}", vid=f"v{seq}"), client_id="g", seq=seq, ack=7))
    assert list(d.fsm.sessions["g"].results) == [7, 8, 9]
    with pytest.raises(InvalidRequest):
        d.run(c.PutObject(version(key="k4", vid="again"), client_id="g", seq=4, ack=7))
