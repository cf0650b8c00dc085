"""Garbage collection's guard: the state machine refuses commits naming blobs that may
have been collected (deterministically, from the log alone), the reference check behind
``POST /v1/gc/check``, and a node's collection pass against a fake check."""
from __future__ import annotations

from pathlib import Path

import pytest

from metadata.api import commands as c
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.references import ORPHAN, REFERENCED, YOUNG, blob_status
from metadata.gc_http import stamp
from objstore.errors import RequestTimeout
from objstore.hlc import HLC
from objstore.node.blob import BlobId
from objstore.node.gc import GarbageCollector
from tests.unit.test_fsm import Driver, version
from tests.unit.test_store import opened, put
from tests.unit.test_uploads import complete, part, upload

NOW = 1_800_000_000.0


def vid_at(t: float, gw: str = "gw1") -> str:
    return HLC(gw, clock=lambda: t).next()


@pytest.fixture
def d() -> Driver:
    drv = Driver()
    drv.run(c.CreateBucket("b", "alice", "replica:3", NOW))
    return drv


def test_a_put_older_than_its_commit_floor_is_refused_and_commits_nothing(d):
    old = version(vid=vid_at(NOW - 100))
    with pytest.raises(RequestTimeout):
        d.run(c.PutObject(old, commit_floor=NOW - 50))
    assert d.fsm.objects["b"].versions("k") == ()
    fresh = version(vid=vid_at(NOW - 10))
    d.run(c.PutObject(fresh, commit_floor=NOW - 50))
    assert d.fsm.get_object("b", "k").version_id == fresh.version_id


def test_once_marked_collectable_no_older_version_or_part_commits(d):
    d.run(c.MarkCollectable(NOW - 30))
    d.run(c.MarkCollectable(NOW - 60))  # never lowers
    assert d.fsm.gc_floor == NOW - 30
    with pytest.raises(RequestTimeout):
        d.run(c.PutObject(version(vid=vid_at(NOW - 40))))  # even unstamped
    d.run(c.CreateMultipartUpload(upload()))
    with pytest.raises(RequestTimeout):
        d.run(c.PutPart("b", "k", "u1", part(1, vid=vid_at(NOW - 40))))
    assert d.run(c.PutPart("b", "k", "u1", part(1, vid=vid_at(NOW - 20)))) is None


def test_parts_recorded_before_the_floor_still_complete(d):
    """Parts of an upload in progress are referenced, so never collected: completing is fine."""
    d.run(c.CreateMultipartUpload(upload()))
    p = part(1, size=5, vid=vid_at(NOW - 100))
    d.run(c.PutPart("b", "k", "u1", p))
    d.run(c.MarkCollectable(NOW - 30))
    complete(d, [[1, p.part.etag, {}]], vid=vid_at(NOW))
    assert d.fsm.get_object("b", "k").parts[0].version_id == p.part.version_id


def test_the_guard_replays_the_same_and_survives_a_snapshot(d):
    cmds = [c.MarkCollectable(NOW - 30), c.PutObject(version(vid=vid_at(NOW - 40))),
            c.PutObject(version(key="k2", vid=vid_at(NOW - 10)), commit_floor=NOW - 5)]
    first = [d.outcome(cmd) for cmd in cmds]
    replay = Driver()
    replay.run(c.CreateBucket("b", "alice", "replica:3", NOW))
    assert [replay.outcome(c.decode_command(c.encode_command(cmd))) for cmd in cmds] == first
    assert [o.error is not None for o in first] == [False, True, True]
    restored = MetadataFSM.restore(d.fsm.snapshot())
    assert restored.gc_floor == NOW - 30 and restored.snapshot() == d.fsm.snapshot()


def test_stamp_sets_the_floor_of_commands_that_commit_new_blobs_only():
    put_cmd = stamp(c.PutObject(version()), 3600, NOW)
    assert put_cmd.commit_floor == NOW - 1800
    assert stamp(c.PutPart("b", "k", "u", part(1)), 3600, NOW).commit_floor == NOW - 1800
    assert stamp(c.PutObject(version()), 0, NOW).commit_floor == 0  # guard off
    tags = c.SetObjectTags("b", "k", {"a": "b"})
    assert stamp(tags, 3600, NOW) is tags


def test_blob_status_sees_versions_multipart_parts_and_uploads_in_progress(d):
    v = version(vid=vid_at(NOW - 20))
    d.run(c.PutObject(v))
    d.run(c.CreateMultipartUpload(upload(key="mp")))
    pending = part(1, size=5, vid=vid_at(NOW - 100))
    d.run(c.PutPart("b", "mp", "u1", pending))
    d.run(c.CreateMultipartUpload(upload(key="done", uid="u2")))
    p = part(1, size=5, vid=vid_at(NOW - 100))
    d.run(c.PutPart("b", "done", "u2", p))
    complete(d, [[1, p.part.etag, {}]], uid="u2", key="done", vid=vid_at(NOW - 20))
    d.run(c.MarkCollectable(NOW - 30))
    f = d.fsm
    assert blob_status(f, "b", "k", v.version_id) == REFERENCED
    assert blob_status(f, "b", "mp", pending.part.version_id) == REFERENCED
    assert blob_status(f, "b", "done", p.part.version_id) == REFERENCED
    assert blob_status(f, "b", "k", vid_at(NOW - 100)) == ORPHAN
    assert blob_status(f, "b", "k", vid_at(NOW - 10)) == YOUNG  # could still commit
    assert blob_status(f, "b", "k", "not-an-hlc-id") == YOUNG
    assert blob_status(f, "gone-bucket", "k", vid_at(NOW - 100)) == ORPHAN
    d.run(c.AbortMultipartUpload("b", "mp", "u1"))
    assert blob_status(f, "b", "mp", pending.part.version_id) == ORPHAN


async def test_a_node_pass_deletes_only_old_orphans(tmp_path: Path):
    store = await opened(tmp_path)
    try:
        ids = {name: vid_at(NOW - age, gw=name) for name, age in
               (("orphan", 5000), ("referenced", 5000), ("young", 10), ("rewritten", 5000))}
        for name, vid in ids.items():
            await put(store, vid, name.encode(), key=name)
        asked: list[list] = []

        async def check(refs: list[list]) -> list[str]:
            asked.extend(refs)
            if any(r[1] == "rewritten" for r in refs):  # rewritten after the node asked
                await put(store, ids["rewritten"], b"again", key="rewritten")
            return [ORPHAN if r[1] in ("orphan", "rewritten") else REFERENCED for r in refs]

        gc = GarbageCollector(store, check, grace=3600, clock=lambda: NOW)
        assert await gc.collect_once() == 1
        assert sorted(r[1] for r in asked) == ["orphan", "referenced", "rewritten"]  # young: not even asked
        assert store.index.get(BlobId(ids["orphan"], 0)) is None
        for name in ("referenced", "young", "rewritten"):
            assert store.index.get(BlobId(ids[name], 0)) is not None
        assert gc.stats.collected_bytes == len(b"orphan")
    finally:
        await store.close()



def test_a_copy_on_a_node_the_placement_no_longer_lists_is_an_orphan_there(d):
    """Repair replaced n1 (out) by n4: n1's old copy is an orphan there once both its version
    and its write on n1 are older than the floor; the others are referenced."""
    v = version(vid=vid_at(NOW - 20), placement=("n1", "n2", "n3"))
    d.run(c.PutObject(v))
    d.run(c.CreateMultipartUpload(upload(key="done", uid="u2")))
    p = part(1, size=5, vid=vid_at(NOW - 100))
    d.run(c.PutPart("b", "done", "u2", p))
    complete(d, [[1, p.part.etag, {}]], uid="u2", key="done", vid=vid_at(NOW - 20))
    d.run(c.RepairPlacement("b", "k", v.version_id, 0, ["n1", "n2", "n3"], ["n4", "n2", "n3"]))
    f = d.fsm
    d.run(c.MarkCollectable(NOW - 10))
    assert blob_status(f, "b", "k", v.version_id, "n1", NOW - 50) == ORPHAN
    assert blob_status(f, "b", "k", v.version_id, "n1", NOW - 5) == YOUNG  # written after the floor
    assert blob_status(f, "b", "k", v.version_id, "n4", NOW - 50) == REFERENCED
    assert blob_status(f, "b", "k", v.version_id) == REFERENCED  # a node that does not say who it is
    on = p.part.placement[0]
    assert blob_status(f, "b", "done", p.part.version_id, on, NOW - 200) == REFERENCED
    assert blob_status(f, "b", "done", p.part.version_id, "n9", NOW - 200) == ORPHAN
    assert blob_status(f, "b", "k", vid_at(NOW - 100), "n1", NOW - 100) == ORPHAN


async def test_a_stale_copy_is_deleted_but_a_copy_written_within_grace_is_not_asked(tmp_path: Path):
    """A copy written on this node within ``grace`` (a repair's copy waiting for its commit)
    is not even sent to the check; an old stale copy answered orphan is deleted in one pass."""
    now = [NOW - 5000.0]
    store = await opened(tmp_path, clock=lambda: now[0])
    try:
        stale, repairing = vid_at(NOW - 5000, gw="stale"), vid_at(NOW - 5000, gw="repairing")
        await put(store, stale, b"old copy", key="stale")
        now[0] = NOW - 10  # the repair's copy of an old version is written just now
        await put(store, repairing, b"new copy", key="repairing")
        asked = []

        async def check(refs: list[list]) -> list[str]:
            asked.extend(refs)
            return [ORPHAN for _ in refs]

        gc = GarbageCollector(store, check, grace=3600, clock=lambda: NOW)
        assert await gc.collect_once() == 1
        assert [r[1] for r in asked] == ["stale"]
        assert asked[0][4] == pytest.approx(NOW - 5000)  # its write time on this node goes along
        assert store.index.get(BlobId(stale, 0)) is None
        assert store.index.get(BlobId(repairing, 0)) is not None
    finally:
        await store.close()
