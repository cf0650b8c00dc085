"""Unit tests for the consistent-hash ring (objstore.ring): pure, no IO."""
from __future__ import annotations

import collections

import pytest
import xxhash

from objstore.ring import (
    RING_SEED,
    Ring,
    build_ring,
    describe,
    object_token,
    vnode_count,
    vnode_token,
)
from objstore.types import ClusterMap, NodeInfo

KEYS = [f"key-{i}/part" for i in range(3000)]


def make_map(n: int, zones: int = 1, epoch: int = 1, **overrides: NodeInfo) -> ClusterMap:
    nodes = [
        NodeInfo(f"node-{i}", f"127.0.0.1:{7000 + i}", zone=f"zone-{i % zones}")
        for i in range(1, n + 1)
    ]
    nodes = [overrides.get(nd.node_id, nd) for nd in nodes]
    return ClusterMap(epoch, tuple(nodes))


def six_nodes_three_zones() -> ClusterMap:
    """node-1..6 in zone-b, c, a, b, c, a: the map behind the golden placements."""
    return ClusterMap(7, tuple(
        NodeInfo(f"node-{i}", f"127.0.0.1:{7000 + i}", zone=f"zone-{'abc'[i % 3]}")
        for i in range(1, 7)
    ))


# Computed once; a change here means every stored object would move.
GOLDEN = [
    ("photos", "cat.jpg", ["node-5", "node-1", "node-6", "node-2", "node-4", "node-3"],
     7506997636758417731),
    ("photos", "dir/sub/ünïcødé 🐈.png",
     ["node-3", "node-2", "node-1", "node-5", "node-6", "node-4"], 14487546275737928968),
    ("logs", "2024/01/01/app.log", ["node-6", "node-2", "node-4", "node-3", "node-1", "node-5"],
     3376876361105418499),
    ("b", "", ["node-6", "node-5", "node-4", "node-2", "node-1", "node-3"],
     13231833359234356693),
    ("bucket-x", "a\nb", ["node-1", "node-3", "node-2", "node-4", "node-6", "node-5"],
     13745214089365243472),
]


@pytest.mark.parametrize("bucket,key,expected,token", GOLDEN)
def test_placement_matches_golden_values(bucket, key, expected, token):
    ring = build_ring(six_nodes_three_zones())
    assert object_token(bucket, key) == token
    assert ring.locate(bucket, key, 3) == expected[:3]
    assert ring.locate(bucket, key, 6) == expected


def test_hash_functions_are_fixed():
    assert vnode_token("node-1", 0) == 7400003195855012322
    assert vnode_token("node-1", 127) == 3270175766839542159
    assert object_token("b", "k") == xxhash.xxh64_intdigest(b"b\0k", RING_SEED)


def test_same_map_gives_same_placement_regardless_of_node_order():
    cmap = six_nodes_three_zones()
    reordered = ClusterMap(cmap.epoch, tuple(reversed(cmap.nodes)))
    a, b = build_ring(cmap), Ring(reordered)
    for key in KEYS[:500]:
        assert a.locate("bkt", key, 3) == b.locate("bkt", key, 3)


def test_replicas_are_distinct_nodes():
    ring = build_ring(make_map(10, zones=2))
    for n in (1, 2, 3, 5, 10):
        for key in KEYS[:300]:
            got = ring.locate("bkt", key, n)
            assert len(got) == n
            assert len(set(got)) == n


def test_three_replicas_land_in_three_zones():
    ring = build_ring(make_map(6, zones=3))
    zone = {nd.node_id: nd.zone for nd in ring.nodes}
    for key in KEYS:
        got = ring.locate("bkt", key, 3)
        assert len({zone[x] for x in got}) == 3, (key, got)


def test_more_replicas_than_zones_spread_evenly_over_zones():
    ring = build_ring(make_map(9, zones=3))
    zone = {nd.node_id: nd.zone for nd in ring.nodes}
    for key in KEYS[:1000]:
        per_zone = collections.Counter(zone[x] for x in ring.locate("bkt", key, 6))
        assert sorted(per_zone.values()) == [2, 2, 2], key


def test_uneven_zones_still_use_every_zone():
    nodes = (
        NodeInfo("a1", "h:1", zone="a"), NodeInfo("a2", "h:2", zone="a"),
        NodeInfo("a3", "h:3", zone="a"), NodeInfo("a4", "h:4", zone="a"),
        NodeInfo("b1", "h:5", zone="b"),
    )
    ring = build_ring(ClusterMap(1, nodes))
    for key in KEYS[:1000]:
        got = ring.locate("bkt", key, 3)
        assert "b1" in got and len(set(got)) == 3


def test_fewer_nodes_than_replicas_returns_all_nodes():
    ring = build_ring(make_map(2, zones=2))
    got = ring.locate("bkt", "k", 5)
    assert sorted(got) == ["node-1", "node-2"]
    assert build_ring(ClusterMap(1, ())).locate("bkt", "k", 3) == []
    assert ring.locate("bkt", "k", 0) == []


def test_placement_is_prefix_stable():
    ring = build_ring(make_map(8, zones=3))
    for key in KEYS[:300]:
        full = ring.locate("bkt", key, 8)
        for n in range(8):
            assert ring.locate("bkt", key, n) == full[:n]


def test_double_weight_gets_about_twice_the_keys():
    heavy = NodeInfo("node-1", "127.0.0.1:7001", weight=2.0)
    ring = build_ring(make_map(5, **{"node-1": heavy}))
    counts = collections.Counter(ring.locate("bkt", f"w{i}", 1)[0] for i in range(30000))
    others = [counts[f"node-{i}"] for i in range(2, 6)]
    ratio = counts["node-1"] / (sum(others) / len(others))
    assert 1.6 <= ratio <= 2.4, ratio
    assert vnode_count(2.0, 128) == 256 and vnode_count(0.001, 128) == 1


def test_only_included_states_take_placements():
    cmap = make_map(6, **{
        "node-1": NodeInfo("node-1", "h:1", state="draining"),
        "node-2": NodeInfo("node-2", "h:2", state="out"),
        "node-3": NodeInfo("node-3", "h:3", state="removed"),
        "node-4": NodeInfo("node-4", "h:4", weight=0.0),
    })
    ring = build_ring(cmap)
    assert ring.node_ids == ("node-5", "node-6")
    # A down or full node keeps its share: a short outage or a full disk moves nothing.
    kept = build_ring(make_map(6, **{"node-5": NodeInfo("node-5", "h:5", state="down"),
                                     "node-6": NodeInfo("node-6", "h:6", state="full")}))
    assert kept.node_ids == ("node-1", "node-2", "node-3", "node-4", "node-5", "node-6")
    placed = {x for key in KEYS[:500] for x in ring.locate("bkt", key, 3)}
    assert placed == {"node-5", "node-6"}
    with_draining = build_ring(cmap, include_states=("up", "draining"))
    assert with_draining.node_ids == ("node-1", "node-5", "node-6")
    assert "node-1" in with_draining and "node-1" not in ring


def test_ring_exposes_epoch_nodes_and_is_read_only():
    cmap = make_map(4, zones=2, epoch=42)
    ring = build_ring(cmap, vnodes_per_weight=16)
    assert ring.epoch == 42
    assert ring.cluster_map is cmap
    assert [nd.node_id for nd in ring.nodes] == ["node-1", "node-2", "node-3", "node-4"]
    assert len(ring.tokens) == 64 and list(ring.tokens) == sorted(ring.tokens)
    assert len(ring) == 4
    with pytest.raises(AttributeError):
        ring.epoch = 43  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ring.extra = 1  # type: ignore[attr-defined]


def test_invalid_maps_are_rejected():
    dup = ClusterMap(1, (NodeInfo("x", "h:1"), NodeInfo("x", "h:2")))
    with pytest.raises(ValueError):
        build_ring(dup)
    with pytest.raises(ValueError):
        build_ring(make_map(3), vnodes_per_weight=0)


def test_locate_extra_continues_the_sequence():
    ring = build_ring(make_map(9, zones=3))
    for key in KEYS[:300]:
        full = ring.locate("bkt", key, 9)
        assert ring.locate_extra("bkt", key, 3) == full[3:]
        assert ring.locate_extra("bkt", key, 3, limit=2) == full[3:5]


def test_locate_extra_skips_excluded_and_prefers_the_lost_zone():
    ring = build_ring(make_map(9, zones=3))
    zone = {nd.node_id: nd.zone for nd in ring.nodes}
    for key in KEYS[:300]:
        primaries = ring.locate("bkt", key, 3)
        down = primaries[1]
        extra = ring.locate_extra("bkt", key, 3, exclude={down, "no-such-node"})
        assert set(extra).isdisjoint(primaries)
        assert len(extra) == 6
        assert zone[extra[0]] == zone[down], (key, primaries, extra)


def test_locate_extra_with_nothing_left():
    ring = build_ring(make_map(3, zones=3))
    assert ring.locate_extra("bkt", "k", 3) == []
    assert ring.locate_extra("bkt", "k", 2, limit=0) == []


def test_describe_shares_are_exact_and_sum_to_one():
    heavy = NodeInfo("node-1", "127.0.0.1:7001", zone="zone-1", weight=2.0)
    ring = build_ring(make_map(6, zones=3, epoch=9, **{"node-1": heavy}))
    info = describe(ring, replicas=3)
    assert info["epoch"] == 9 and info["total_vnodes"] == 7 * 128
    nodes = info["nodes"]
    assert sum(v["share"] for v in nodes.values()) == pytest.approx(1.0)
    assert sum(v["replica_share"] for v in nodes.values()) == pytest.approx(1.0)
    assert nodes["node-1"]["expected_share"] == pytest.approx(2 / 7)
    assert nodes["node-1"]["vnodes"] == 256
    # The exact primary share matches what sampling keys shows.
    counts = collections.Counter(ring.locate("bkt", f"d{i}", 1)[0] for i in range(20000))
    for nid, v in nodes.items():
        assert counts[nid] / 20000 == pytest.approx(v["share"], abs=0.015)
    # And the replica share matches sampled 3-replica placements.
    copies = collections.Counter(x for i in range(20000) for x in ring.locate("bkt", f"d{i}", 3))
    for nid, v in nodes.items():
        assert copies[nid] / 60000 == pytest.approx(v["replica_share"], abs=0.015)


def test_describe_single_vnode_ring():
    ring = build_ring(make_map(1), vnodes_per_weight=1)
    assert describe(ring)["nodes"]["node-1"]["share"] == 1.0


def test_build_100_nodes():
    ring = build_ring(make_map(100, zones=4), vnodes_per_weight=128)
    assert len(ring.tokens) == 12800
    assert len(set(ring.tokens)) == len(ring.tokens)
