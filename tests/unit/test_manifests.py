"""Commit manifests: the pure rules (objstore.manifest) and a storage node's durable table
(objstore.node.manifests)."""
from __future__ import annotations

import pytest

from objstore.errors import InvalidArgument
from objstore.manifest import (
    CommitManifest, check_level, find_version, manifest_read_quorum, manifest_replicas, manifest_write_quorum,
    newest, quorums_overlap,
)
from objstore.node.manifests import FILE_NAME, ManifestStore
from objstore.types import ObjectVersion, Policy

R3, EC42 = Policy.parse("replica:3"), Policy.parse("ec:4+2")


def version(vid: str, versioned: bool = False, marker: bool = False) -> ObjectVersion:
    return ObjectVersion("b", "k", vid, 1, "e", 1.0, versioned=versioned, delete_marker=marker)


def m(index: int, v: ObjectVersion | None, key: str = "k", removed: str = "") -> CommitManifest:
    return CommitManifest("b", key, index, v, removed)


def test_quorum_sizes_overlap_for_the_bucket_write_quorum():
    assert (manifest_replicas(R3), manifest_write_quorum(R3, 0), manifest_read_quorum(R3)) == (3, 2, 2)
    assert manifest_read_quorum(R3, 3) == 1 and manifest_read_quorum(R3, 1) == 3
    assert (manifest_replicas(EC42), manifest_write_quorum(EC42, 6), manifest_read_quorum(EC42, 5)) == (3, 2, 2)
    assert quorums_overlap(R3, 0, 2) and not quorums_overlap(R3, 0, 1) and quorums_overlap(R3, 1, 1)


def test_newest_is_by_commit_index_not_version_id():
    assert newest([m(9, version("a")), m(7, version("z"))]).version.version_id == "a"
    assert newest([]) is None


def test_find_version_honours_removals_and_null_versions():
    ms = [m(3, version("v1", True)), m(4, version("v2", True)), m(5, version("v2", True), removed="v1")]
    assert find_version(ms, "v2").version_id == "v2"
    assert find_version(ms, "v1") is None
    assert find_version([m(3, version("x")), m(4, version("y"))], "null").version_id == "y"


def test_levels_and_formats_are_checked():
    assert check_level("quorum") == "quorum"
    with pytest.raises(InvalidArgument):
        check_level("eventual")
    with pytest.raises(InvalidArgument):
        CommitManifest.from_dict({"f": 99})
    d = m(4, version("v", marker=True)).to_dict()
    assert CommitManifest.from_dict(d) == m(4, version("v", marker=True)) and CommitManifest.from_dict(d).tombstone


def test_a_node_keeps_the_newest_manifests_across_a_restart_and_skips_a_torn_tail(tmp_path):
    store = ManifestStore(str(tmp_path), per_key=2)
    store.open()
    assert store.put_sync(m(5, version("a")))
    assert store.put_sync(m(7, version("b")))
    assert not store.put_sync(m(5, version("a")))  # already there
    assert not store.put_sync(m(3, version("old")))  # older than every one kept, list full
    assert store.put_sync(m(6, version("c")))
    assert [x.commit_index for x in store.get("b", "k")] == [7, 6]
    store.close()
    with open(tmp_path / FILE_NAME, "ab") as f:
        f.write(b"0000abcd {\"torn")
    again = ManifestStore(str(tmp_path), per_key=2)
    again.open()
    assert [x.commit_index for x in again.get("b", "k")] == [7, 6]
    assert again.get("b", "other") == []
    again.close()


def test_the_table_is_bounded_and_its_file_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr("objstore.node.manifests.COMPACT_SLACK", 4)
    store = ManifestStore(str(tmp_path), per_key=1, max_keys=3)
    store.open()
    for i in range(1, 21):
        store.put_sync(m(i, version(f"v{i}"), key=f"k{i % 5}"))
    assert len(store) == 3
    store.close()
    lines = (tmp_path / FILE_NAME).read_bytes().count(b"\n")
    assert lines <= 2 * 3 + 4 + 1
    again = ManifestStore(str(tmp_path), per_key=1, max_keys=3)
    again.open()
    assert {k for k in ("k0", "k1", "k2", "k3", "k4") if again.get("b", k)} == {"k3", "k4", "k0"}
    again.close()


def test_a_changed_version_is_found_by_id_and_round_trips():
    tagged = ObjectVersion("b", "k", "v1", 1, "e", 1.0, versioned=True, tags={"a": "1"})
    change = CommitManifest("b", "k", 9, version("v2", True), changed=tagged)
    assert CommitManifest.from_dict(change.to_dict()) == change
    assert "changed" not in m(3, version("v1", True)).to_dict()  # written only when set
    ms = [m(3, version("v1", True)), m(4, version("v2", True)), change]
    assert find_version(ms, "v1").tags == {"a": "1"}
    assert newest(ms).version.version_id == "v2"  # the current version stays the current one


def test_a_batch_is_stored_with_one_write_and_pages_walk_every_key_in_order(tmp_path):
    store = ManifestStore(str(tmp_path))
    store.open()
    batch = [m(i, version(f"v{i}"), key=f"k{i % 7}") for i in range(1, 30)]
    assert store.put_many_sync(batch + batch[:3]) == 29  # repeats are not stored twice
    assert store.put_many_sync(batch) == 0
    seen, after = [], ("", "")
    while True:
        page = store.page(after, 3)
        seen += [(b, k) for b, k, _ in page]
        if len(page) < 3:
            break
        after = page[-1][:2]
    assert seen == sorted({("b", f"k{i}") for i in range(7)})
    assert [x.commit_index for x in store.page(("b", "k0"), 1)[0][2]] == [29, 22, 15, 8, 1]  # newest first
    store.close()
    reopened = ManifestStore(str(tmp_path))
    reopened.open()
    assert reopened.get("b", "k1") == store.get("b", "k1")
    reopened.close()


async def test_concurrent_manifests_share_one_fsync_and_are_all_durable(tmp_path, monkeypatch):
    import asyncio
    import os

    import objstore.node.manifests as manifests_module

    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(manifests_module.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    store = ManifestStore(str(tmp_path), per_key=2)
    store.open()
    ms = [m(i, version(f"v{i}"), key=f"k{i % 10}") for i in range(1, 41)]
    stored = await asyncio.gather(*(store.put(x) for x in ms), store.put(m(40, version("v40"), key="k0")))
    assert stored[:40] == [True] * 40 and stored[40] is False  # the same manifest twice is stored once
    assert len(fsyncs) < 40  # appends arriving together are made durable together
    store.close()
    again = ManifestStore(str(tmp_path), per_key=2)
    again.open()
    assert [x.commit_index for x in again.get("b", "k0")] == [40, 30]
    assert len(again) == 10


async def test_batch_calls_and_single_manifests_arriving_together_share_one_fsync(tmp_path, monkeypatch):
    import asyncio
    import os

    import objstore.node.manifests as manifests_module
    from objstore.errors import StaleRingEpoch

    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(manifests_module.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    store = ManifestStore(str(tmp_path))
    store.open()
    batches = [[m(10 * b + i, version(f"v{b}-{i}"), key=f"k{b}-{i}") for i in range(1, 5)] for b in range(6)]
    batches[0].append(batches[0][0])  # a repeat inside a call is stored once
    outcome = await asyncio.gather(*(store.put_many(b, ring_epoch=1) for b in batches),
                                   store.put(m(99, version("v99"), key="single"), ring_epoch=1))
    assert outcome == [4] * 6 + [True]
    assert len(fsyncs) == 1  # seven calls, one write and one fsync
    store.walk_page(("", ""), 10, fence=3)
    stale = [m(200, version("v200"), key="late"), m(201, version("v201"), key="late2")]
    with pytest.raises(StaleRingEpoch):
        await store.put_many(stale, ring_epoch=2)
    assert store.get("b", "late") == [] and store.get("b", "late2") == []  # none of a refused call stored
    assert await store.put_many(stale, ring_epoch=3) == 2
    store.close()
    again = ManifestStore(str(tmp_path))
    again.open()
    assert len(again) == 6 * 4 + 1 + 2


class _CountingTable(dict):
    """A manifest table that counts lookups and refuses to be walked whole."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.lookups = 0

    def get(self, k, default=None):
        self.lookups += 1
        return super().get(k, default)

    def __iter__(self):
        raise AssertionError("a page with a cursor walked the whole table")


def test_walk_pages_after_the_first_cost_the_page_not_the_table(tmp_path):
    store = ManifestStore(str(tmp_path))
    store.open()
    store.put_many_sync([m(i, version(f"v{i}"), key=f"k{i:05d}") for i in range(1, 2001)])
    page, cursor = store.walk_page(("", ""), 100)
    seen = [k for _b, k, _ in page]
    store._table = _CountingTable(store._table)  # type: ignore[assignment]
    while cursor:
        before = store._table.lookups
        page, cursor = store.walk_page(("b", seen[-1]), 100, cursor)
        assert store._table.lookups - before == len(page) == 100  # one lookup per key served
        seen += [k for _b, k, _ in page]
    assert seen == [f"k{i:05d}" for i in range(1, 2001)]
    assert store._cursors == {}  # walked to the end: the snapshot is let go


def test_a_walk_skips_keys_dropped_since_and_an_unknown_cursor_starts_again(tmp_path):
    store = ManifestStore(str(tmp_path), per_key=1, max_keys=6)
    store.open()
    store.put_many_sync([m(i, version(f"v{i}"), key=f"k{i}") for i in range(1, 7)])
    page, cursor = store.walk_page(("", ""), 2)
    assert [k for _b, k, _ in page] == ["k1", "k2"]
    store.put_many_sync([m(8, version("v8"), key="k1"), m(9, version("v9"), key="k2"),
                         m(7, version("v7"), key="k7")])  # k3, now the least recently updated, is dropped
    assert store.get("b", "k3") == []
    page, cursor = store.walk_page(("b", "k2"), 2, cursor)
    assert [k for _b, k, _ in page] == ["k4", "k5"]  # k7 came after the snapshot
    page, cursor = store.walk_page(("b", "k5"), 5, "no-such-cursor")  # a node restart, say
    assert [k for _b, k, _ in page] == ["k6", "k7"] and cursor == ""


async def test_a_fence_refuses_manifests_and_reads_of_older_rings_durably(tmp_path):
    from objstore.errors import StaleRingEpoch

    store = ManifestStore(str(tmp_path))
    store.open()
    assert store.put_sync(m(1, version("v1")), ring_epoch=3)
    store.walk_page(("", ""), 10, fence=5)  # a hand-over to the ring of epoch 5 begins
    with pytest.raises(StaleRingEpoch) as err:
        store.put_sync(m(2, version("v2")), ring_epoch=4)
    assert err.value.extra["fence"] == 5
    with pytest.raises(StaleRingEpoch):
        store.put_many_sync([m(2, version("v2"), key="other")], ring_epoch=4)
    with pytest.raises(StaleRingEpoch):
        store.get("b", "k", ring_epoch=4)
    stale, fresh = store.put(m(3, version("v3")), ring_epoch=4), store.put(m(4, version("v4")), ring_epoch=5)
    import asyncio

    outcome = await asyncio.gather(stale, fresh, return_exceptions=True)
    assert isinstance(outcome[0], StaleRingEpoch) and outcome[1] is True  # one batch, each judged on its own
    assert [x.commit_index for x in store.get("b", "k", ring_epoch=5)] == [4, 1]
    store.raise_fence(2)  # never lowers
    assert store.fence == 5
    store.close()
    again = ManifestStore(str(tmp_path))
    again.open()
    assert again.fence == 5 and [x.commit_index for x in again.get("b", "k")] == [4, 1]
    with pytest.raises(StaleRingEpoch):
        again.put_sync(m(6, version("v6")), ring_epoch=4)
    again.close()


def test_a_manifest_stored_after_a_torn_tail_survives_the_next_restart(tmp_path):
    store = ManifestStore(str(tmp_path))
    store.open()
    assert store.put_sync(m(5, version("a")))
    store.close()
    with open(tmp_path / FILE_NAME, "ab") as f:  # a crash in the middle of a write
        f.write(b"0000abcd {\"torn")
    again = ManifestStore(str(tmp_path))
    again.open()
    assert again.put_sync(m(9, version("b")))  # acknowledged: durable
    again.close()
    third = ManifestStore(str(tmp_path))
    third.open()
    assert [x.commit_index for x in third.get("b", "k")] == [9, 5]
    third.close()


def test_a_manifest_stored_after_a_failed_write_survives_a_restart(tmp_path, monkeypatch):
    import errno

    from objstore.node import manifests as mod

    store = ManifestStore(str(tmp_path))
    store.open()
    assert store.put_sync(m(5, version("a")))
    real = mod.write_all

    def half_then_full(fd, data, write=None):  # the disk fills in the middle of the line
        real(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mod, "write_all", half_then_full)
    with pytest.raises(OSError):
        store.put_sync(m(7, version("b")))
    monkeypatch.setattr(mod, "write_all", real)
    assert store.put_sync(m(9, version("c")))  # acknowledged: durable
    store.close()
    again = ManifestStore(str(tmp_path))
    again.open()
    assert [x.commit_index for x in again.get("b", "k")] == [9, 5]
    again.close()


async def test_close_fails_queued_manifests_instead_of_writing_them_after_the_file_closed(tmp_path):
    import asyncio
    import threading

    store = ManifestStore(str(tmp_path))
    store.open()
    queued = asyncio.ensure_future(store.put(m(1, version("v1"))))
    await asyncio.sleep(0)  # queued; the writer lets the loop run before taking it
    before = set(threading.enumerate())
    store.close()
    with pytest.raises(OSError, match="closed before"):
        await asyncio.wait_for(queued, 2)
    # No commit thread was started for a file already closed.
    assert not [t for t in set(threading.enumerate()) - before if t.name == "manifest-commit"]


async def test_drain_then_close_writes_what_was_queued(tmp_path):
    import asyncio

    store = ManifestStore(str(tmp_path))
    store.open()
    queued = asyncio.ensure_future(store.put(m(1, version("v1"))))
    await asyncio.sleep(0)
    await store.drain()
    store.close()
    assert await queued is True
    again = ManifestStore(str(tmp_path))
    again.open()
    assert [x.commit_index for x in again.get("b", "k")] == [1]
