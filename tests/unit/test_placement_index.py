"""The placement index of the metadata state machine (keys by node, versions below policy)
and the conditional RepairPlacement command."""
from __future__ import annotations

import pytest

from metadata.api import commands as c
from metadata.api.commands import decode_command, encode_command
from objstore.repair_records import RepairOutcome
from metadata.fsm.machine import MetadataFSM
from objstore.types import NodeInfo, ObjectVersion, PartRef
from tests.unit.test_fsm import Driver, version

MD5 = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def d() -> Driver:
    drv = Driver()
    for i in range(1, 9):
        drv.run(c.RegisterNode(NodeInfo(f"n{i}", f"127.0.0.1:{7000 + i}")))
    drv.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    drv.run(c.CreateBucket("e", "alice", "ec:4+2", 1.0))
    return drv


def below(fsm: MetadataFSM) -> tuple[int, int]:
    return fsm.placements.objects_below, fsm.placements.bytes_below


def keys_on(fsm: MetadataFSM, node: str) -> set[tuple[str, str]]:
    return set(fsm.placements.keys_on(node))


def multipart(key: str, placements: list[tuple[str, ...]], bucket: str = "b", policy: str = "replica:3"):
    parts = tuple(PartRef(i + 1, f"{i:016x}-gw", 100, MD5, pl) for i, pl in enumerate(placements))
    return ObjectVersion(bucket=bucket, key=key, version_id="mp1", size=100 * len(parts), etag=MD5 + "-2",
                         last_modified=1.0, policy=policy, parts=parts, owner="alice")


def test_index_by_node_follows_puts_and_deletes(d):
    d.run(c.PutObject(version(key="a", placement=("n1", "n2", "n3"))))
    d.run(c.PutObject(version(key="b", placement=("n2", "n4", "n5"))))
    assert keys_on(d.fsm, "n2") == {("b", "a"), ("b", "b")}
    assert keys_on(d.fsm, "n1") == {("b", "a")}
    d.run(c.PutObject(version(key="a", placement=("n6", "n7", "n8"))))  # unversioned: replaces
    assert keys_on(d.fsm, "n1") == set() and keys_on(d.fsm, "n6") == {("b", "a")}
    d.run(c.DeleteObject("b", "a"))
    assert keys_on(d.fsm, "n6") == set()
    assert "n1" not in d.fsm.placements.by_node


def test_index_holds_every_version_and_part(d):
    d.run(c.SetBucketVersioning("b", "Enabled"))
    d.run(c.PutObject(version(key="a", vid="v1", placement=("n1", "n2", "n3"))))
    d.run(c.PutObject(version(key="a", vid="v2", placement=("n4", "n5", "n6"))))
    assert keys_on(d.fsm, "n1") == {("b", "a")} and keys_on(d.fsm, "n4") == {("b", "a")}
    d.run(c.PutObject(multipart("m", [("n7", "n8", "n1"), ("n2", "n3", "n4")])))
    for n in ("n7", "n8", "n2"):
        assert ("b", "m") in keys_on(d.fsm, n)
    d.run(c.DeleteObject("b", "a", version_id="v1"))
    assert keys_on(d.fsm, "n1") == {("b", "m")}


def test_write_below_quorum_width_is_below_policy_at_commit(d):
    d.run(c.PutObject(version(key="a", size=10, placement=("n1", "n2"))))  # W=2 of N=3
    d.run(c.PutObject(version(key="b", size=20, placement=("n1", "n2", "n3"))))
    assert below(d.fsm) == (1, 10)
    assert d.fsm.counts()["objects_below_policy"] == 1 and d.fsm.counts()["bytes_below_policy"] == 10
    d.run(c.PutObject(version(key="a", size=10, placement=("n1", "n2", "n4"))))
    assert below(d.fsm) == (0, 0)


def test_node_out_puts_its_objects_below_policy_and_back(d):
    d.run(c.PutObject(version(key="a", size=10, placement=("n1", "n2", "n3"))))
    d.run(c.PutObject(version(key="b", size=20, placement=("n1", "n4", "n5"))))
    d.run(c.PutObject(version(key="c", size=40, placement=("n4", "n5", "n6"))))
    d.run(c.SetNodeState("n1", "down"))  # down still holds
    assert below(d.fsm) == (0, 0)
    d.run(c.SetNodeState("n1", "out"))
    assert below(d.fsm) == (2, 30)
    d.run(c.SetNodeState("n4", "removed"))
    assert below(d.fsm) == (3, 70)
    assert d.fsm.placements.below[("b", "b")][2] == 0  # one copy left: no spare
    assert list(d.fsm.placements.below_keys())[0] == ("b", "b")  # fewest survivors first
    d.run(c.SetNodeState("n1", "up"))
    d.run(c.SetNodeState("n4", "draining"))
    assert below(d.fsm) == (0, 0)


def test_ec_needs_every_shard_slot(d):
    full = ("n1", "n2", "n3", "n4", "n5", "n6")
    d.run(c.PutObject(version(bucket="e", key="a", size=1000, policy="ec:4+2;stripe=1048576", placement=full)))
    d.run(c.PutObject(version(bucket="e", key="b", size=500, policy="ec:4+2;stripe=1048576",
                              placement=("n1", "", "n3", "n4", "n5", "n6"))))
    assert below(d.fsm) == (1, 500)
    assert d.fsm.placements.below[("e", "b")][2] == 1  # 5 shards, 4 needed
    d.run(c.SetNodeState("n6", "out"))
    assert below(d.fsm) == (2, 1500) and d.fsm.placements.below[("e", "b")][2] == 0


def test_multipart_counts_the_parts_below(d):
    d.run(c.PutObject(multipart("m", [("n1", "n2", "n3"), ("n2", "n3", "n4"), ("n5", "n6", "n7")])))
    d.run(c.SetNodeState("n2", "out"))
    assert below(d.fsm) == (1, 200)  # one object, two of its parts
    d.run(c.SetNodeState("n5", "out"))
    assert below(d.fsm) == (1, 300)


def test_bucket_delete_drops_its_keys(d):
    d.run(c.CreateBucket("t", "alice", "replica:3", 1.0))
    d.run(c.PutObject(version(bucket="t", key="a", placement=("n1",))))
    assert below(d.fsm) == (1, 10) and keys_on(d.fsm, "n1") == {("t", "a")}
    d.run(c.DeleteObject("t", "a"))
    d.run(c.DeleteBucket("t", discard_uploads=True))
    assert below(d.fsm) == (0, 0) and keys_on(d.fsm, "n1") == set()
    # a bucket of the same name starts from nothing
    d.run(c.CreateBucket("t", "alice", "replica:3", 1.0))
    assert keys_on(d.fsm, "n1") == set()


def test_index_is_rebuilt_on_restore(d):
    d.run(c.SetBucketVersioning("b", "Enabled"))
    d.run(c.PutObject(version(key="a", vid="v1", placement=("n1", "n2"))))
    d.run(c.PutObject(version(key="a", vid="v2", placement=("n1", "n3", "n4"))))
    d.run(c.PutObject(multipart("m", [("n1", "n2", "n3"), ("n5", "n6", "n7")])))
    d.run(c.SetNodeState("n7", "out"))
    restored = MetadataFSM.restore(d.fsm.snapshot())
    assert restored.placements.by_node == d.fsm.placements.by_node
    assert restored.placements.below == d.fsm.placements.below
    assert below(restored) == below(d.fsm) == (2, 110)
    assert restored.snapshot() == d.fsm.snapshot()  # derived state is not in the snapshot


# --- RepairPlacement -----------------------------------------------------------------------------


def repair(d, key, expected, placement, bucket="b", vid="v1", part=0) -> RepairOutcome:
    return d.run(c.RepairPlacement(bucket, key, vid, part, list(expected), list(placement)))


def test_repair_placement_applies_when_expected_matches(d):
    d.run(c.PutObject(version(key="a", placement=("n1", "n2"))))
    assert below(d.fsm) == (1, 10)
    out = repair(d, "a", ("n1", "n2"), ("n1", "n2", "n5"))
    assert out == RepairOutcome(True)
    assert d.fsm.get_object("b", "a").placement == ("n1", "n2", "n5")
    assert below(d.fsm) == (0, 0) and ("b", "a") in keys_on(d.fsm, "n5")


def test_repair_placement_refuses_a_stale_expectation(d):
    d.run(c.PutObject(version(key="a", placement=("n1", "n2", "n3"))))
    assert repair(d, "a", ("n1", "n2", "n4"), ("n1", "n2", "n5")) == RepairOutcome(False, "stale")
    assert d.fsm.get_object("b", "a").placement == ("n1", "n2", "n3")


def test_repair_placement_never_resurrects_a_deleted_version(d):
    d.run(c.PutObject(version(key="a", placement=("n1", "n2"))))
    d.run(c.DeleteObject("b", "a"))
    assert repair(d, "a", ("n1", "n2"), ("n1", "n2", "n3")) == RepairOutcome(False, "deleted")
    assert d.fsm.objects["b"].versions("a") == ()
    assert repair(d, "zz", (), ("n1",), bucket="nobucket") == RepairOutcome(False, "deleted")


def test_repair_placement_never_touches_a_newer_version(d):
    d.run(c.SetBucketVersioning("b", "Enabled"))
    d.run(c.PutObject(version(key="a", vid="v1", placement=("n1", "n2"))))
    d.run(c.PutObject(version(key="a", vid="v2", placement=("n3", "n4"))))
    assert repair(d, "a", ("n1", "n2"), ("n1", "n2", "n5")) == RepairOutcome(True)
    cur = d.fsm.get_object("b", "a")
    assert cur.version_id == "v2" and cur.placement == ("n3", "n4")  # still current, untouched
    assert d.fsm.get_object("b", "a", "v1").placement == ("n1", "n2", "n5")
    # an unversioned overwrite replaced v1's blob: the old id is gone
    d2 = Driver()
    d2.run(c.CreateBucket("b", "alice", "replica:3", 1.0))
    d2.run(c.PutObject(version(key="a", vid="old", placement=("n1", "n2"))))
    d2.run(c.PutObject(version(key="a", vid="new", placement=("n3", "n4"))))
    out = d2.run(c.RepairPlacement("b", "a", "old", 0, ["n1", "n2"], ["n1", "n2", "n5"]))
    assert out == RepairOutcome(False, "deleted")
    assert d2.fsm.get_object("b", "a").placement == ("n3", "n4")


def test_repair_placement_of_a_part(d):
    d.run(c.PutObject(multipart("m", [("n1", "n2", "n3"), ("n2", "n3", "n4")])))
    d.run(c.SetNodeState("n4", "out"))
    assert repair(d, "m", ("n1", "n2", "n3"), ("n5", "n6", "n7"), vid="mp1", part=2) == RepairOutcome(False, "stale")
    assert repair(d, "m", ("n2", "n3", "n4"), ("n2", "n3", "n5"), vid="mp1", part=2) == RepairOutcome(True)
    v = d.fsm.get_object("b", "m")
    assert [p.placement for p in v.parts] == [("n1", "n2", "n3"), ("n2", "n3", "n5")]
    assert below(d.fsm) == (0, 0)
    assert repair(d, "m", (), ("n1",), vid="mp1", part=9) == RepairOutcome(False, "deleted")


def test_repair_placement_round_trips_its_encoding(d):
    cmd = c.RepairPlacement("b", "a", "v1", 0, ["n1", ""], ["n1", "n2"])
    assert decode_command(encode_command(cmd)) == cmd
    d.run(c.PutObject(version(key="a", placement=("n1", "n2"))))
    with pytest.raises(Exception):
        d.run(c.RepairPlacement("b", "a", "v1", 0, ["n1", "n2"], [1, 2]))


def test_restore_builds_the_same_index_as_the_commands(d):
    """A snapshot's bulk load (short path for one-blob records, memo per policy and
    placement) gives the placement index the commands built, nodes down included."""
    d.run(c.SetBucketVersioning("b", "Enabled"))
    for i in range(40):  # repeated placements, as in a real index: the memo is hit
        d.run(c.PutObject(version(key=f"k{i:03d}", vid=f"v{i}", size=i * 7,
                                  placement=(f"n{1 + i % 4}", f"n{2 + i % 5}", f"n{3 + i % 3}"))))
    d.run(c.PutObject(version(key="k001", vid="w1", placement=("n1", "n2"))))  # two versions, one short
    d.run(c.PutObject(version(key="short", vid="s1", placement=("n1", "", "n1"))))
    d.run(c.PutObject(version(bucket="e", key="ec", size=1001, policy="ec:4+2",
                              placement=("n1", "n2", "n3", "n4", "n5", "n7"))))
    d.run(c.PutObject(version(bucket="e", key="ec-gap", size=10, policy="ec:4+2",
                              placement=("n1", "", "n3", "n3", "n5", "n6"))))
    d.run(c.PutObject(multipart("m", [("n1", "n2", "n3"), ("n5", "n6", "n7")])))
    d.run(c.DeleteObject("b", "k002", marker_id=f"{99:016x}-gw1", now=2.0))  # a delete marker over a version
    d.run(c.SetNodeState("n7", "out"))
    d.run(c.SetNodeState("n3", "down"))
    restored = MetadataFSM.restore(d.fsm.snapshot())
    mine, theirs = restored.placements, d.fsm.placements
    assert mine.by_node == theirs.by_node
    assert mine.bytes_on == theirs.bytes_on
    assert mine.below == theirs.below and mine.by_spare == theirs.by_spare
    assert below(restored) == below(d.fsm) and below(d.fsm)[0] > 10
    for bucket in ("b", "e"):
        assert restored.objects[bucket].usage() == d.fsm.objects[bucket].usage()


def test_changes_one_at_a_time_give_the_index_a_rebuild_gives(d):
    """Every record change (its short path for keys of one one-blob record included, with
    the copies remembered per policy and placement) keeps the index a rebuild from all
    records makes, through node state changes, overwrites, deletes and odd placements."""
    import random
    from metadata.fsm.placement_index import PlacementIndex
    rng = random.Random(7)
    nodes = [f"n{i}" for i in range(1, 9)] + [""]
    d.run(c.SetBucketVersioning("e", "Enabled"))
    for step in range(400):
        bucket = rng.choice(["b", "e"])
        policy = "replica:3" if bucket == "b" else rng.choice(["ec:4+2", "replica:2"])
        width = 6 if policy.startswith("ec") else rng.choice([1, 2, 3, 4])
        key = f"k{rng.randrange(25)}"
        roll = rng.random()
        if roll < 0.6:
            placement = tuple(rng.choice(nodes) for _ in range(width))
            d.run(c.PutObject(version(bucket=bucket, key=key, vid=f"{step:016x}-gw", size=rng.randrange(0, 5000),
                                      policy=policy, placement=placement)))
        elif roll < 0.7:
            d.run(c.PutObject(multipart(key, [("n1", "n2", "n3"), (rng.choice(nodes[:8]), "n5", "")], bucket=bucket,
                                        policy="replica:3")))
        elif roll < 0.9:
            d.run(c.DeleteObject(bucket, key, marker_id=f"{step:016x}-gm", now=float(step)))
        else:
            d.run(c.SetNodeState(rng.choice(nodes[:8]), rng.choice(["up", "down", "out", "draining", "full"])))
    fsm = d.fsm
    plain = PlacementIndex(fsm.atoms, fsm.nodes, lambda b, k: fsm.objects[b].versions(k))  # its general path only
    by_node: dict = {}
    bytes_on: dict = {}
    below_keys = {}
    for b in fsm.objects:
        for k, versions in fsm.objects[b].versions_from(""):
            for n, size in plain._placed(versions).items():
                by_node.setdefault(n, {}).setdefault(b, set()).add(k)
                if size:
                    bytes_on[n] = bytes_on.get(n, 0) + size
            entry = plain.examine(versions)
            if entry is not None:
                below_keys[(b, k)] = entry
    mine = fsm.placements
    assert mine.by_node == by_node and mine.bytes_on == bytes_on and mine.below == below_keys
    assert below(fsm) == (sum(e[0] for e in below_keys.values()), sum(e[1] for e in below_keys.values()))
    assert below(fsm)[0] > 0 and len(mine._copies) > 10
