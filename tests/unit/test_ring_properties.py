"""Property tests for the ring: load balance and minimal data movement.

The statistical tests (balance, movement fractions) use ``derandomize=True``: their
bounds are statistical, so they run a fixed, reproducible set of clusters rather than a
new sample on every run. The structural properties (distinctness, zone coverage, no key
moving between two nodes that both stay) must hold for every cluster and are explored
randomly.

Figures measured while writing these tests (128 vnodes per unit weight):
- Exact hash-space share (``describe``), 3000 random clusters per size, max/mean:
  3 nodes p50 1.07, p99 1.20, worst 1.29; 10 nodes p50 1.13, p99 1.27, worst 1.35;
  20 nodes p50 1.17, p99 1.30, worst 1.36. min/mean for 20 nodes: p50 0.85, p1 0.74,
  worst 0.68. (Spread ~ 1/sqrt(128) = 8.8% per node.)
- Counting 20,000 sampled keys adds ~sqrt(N/20000) (3% at 20 nodes); over 300
  random clusters of 3..20 nodes, max/mean p50 1.14, p99 1.30, worst 1.41.
- Adding one node to N (moved fraction x (N+1)): single replica p50 1.00, max 1.24;
  3 replicas in one zone (per slot, set-wise) p50 1.00, max 1.12. Removing one of N+1:
  single replica p50 1.01, max 1.27; 3 replicas p50 1.00, max 1.13. Counted by
  position instead of set membership, 3-replica moves are ~2x that (an inserted node
  shifts later replicas along), so data movers should compare placements as sets.
- 3 zones x 1..5 nodes, 3 copies, a node joining a zone of m: moved / (1/(3(m+1)))
  over 60 random clusters p50 0.98, min 0.79, max 1.14.
"""
from __future__ import annotations

import collections

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore.ring import build_ring, object_token
from objstore.types import ClusterMap, NodeInfo

BALANCE_TOKENS = [object_token("balance", f"obj-{i:05d}") for i in range(20000)]
MOVE_TOKENS = BALANCE_TOKENS[:10000]
SMALL_TOKENS = BALANCE_TOKENS[:400]

STAT = settings(max_examples=15, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
EXPLORE = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])

name_prefixes = st.sampled_from(["node-", "n", "storage-", "10.0.0.", "host_"])


def cluster(prefix: str, offset: int, count: int, zones: int) -> list[NodeInfo]:
    return [
        NodeInfo(f"{prefix}{offset + i}", f"127.0.0.1:{7000 + i}", zone=f"z{i % zones}")
        for i in range(count)
    ]


def spread(nodes: list[NodeInfo], n: int, tokens: list[int]) -> tuple[float, float]:
    """(max/mean, min/mean) of per-node copy counts over ``tokens``."""
    ring = build_ring(ClusterMap(1, tuple(nodes)))
    counts = collections.Counter()
    for t in tokens:
        counts.update(ring.locate_token(t, n))
    mean = len(tokens) * n / len(nodes)
    values = [counts[nd.node_id] for nd in nodes]
    return max(values) / mean, min(values) / mean


@STAT
@given(count=st.integers(3, 20), prefix=name_prefixes, offset=st.integers(0, 10**6))
def test_single_replica_load_is_balanced(count, prefix, offset):
    """max/mean <= 1.5 and min/mean >= 0.55 (worst seen: 1.41 and 0.68; see module doc)."""
    hi, lo = spread(cluster(prefix, offset, count, 1), 1, BALANCE_TOKENS)
    assert hi <= 1.5 and lo >= 0.55, (hi, lo)


@STAT
@given(per_zone=st.integers(1, 6), zones=st.sampled_from([1, 3]), prefix=name_prefixes,
       offset=st.integers(0, 10**6))
def test_three_replica_load_is_balanced(per_zone, zones, prefix, offset):
    """Equal-sized zones, 3 copies: max/mean <= 1.4, min/mean >= 0.65.

    Measured over 120 random clusters (1 zone of 3..20 nodes, or 3 zones of 2..6):
    max/mean p50 1.10, p99 1.22, worst 1.23; min/mean worst 0.77.
    """
    count = max(per_zone * zones, 3)
    hi, lo = spread(cluster(prefix, offset, count, zones), 3, BALANCE_TOKENS)
    assert hi <= 1.4 and lo >= 0.65, (hi, lo)


def moved_slots(before, after, n: int, tokens: list[int], joined: str = "", left: str = ""):
    """Copies that change node, counted set-wise; checks nothing else moves.

    On a join, a key's new nodes are its old ones plus at most ``joined``; on a leave,
    its old nodes minus ``left`` all stay.
    """
    moved = 0
    for t in tokens:
        old, new = set(before.locate_token(t, n)), set(after.locate_token(t, n))
        if joined:
            assert new - old <= {joined}, (t, old, new)
        if left:
            assert old - {left} <= new, (t, old, new)
        moved += len(old - new)
    return moved / (len(tokens) * n)


@STAT
@given(count=st.integers(3, 20), replicas=st.sampled_from([1, 3]), prefix=name_prefixes,
       offset=st.integers(0, 10**6))
def test_adding_a_node_moves_about_its_share(count, replicas, prefix, offset):
    """One zone; adding a node to ``count`` moves <= 1.5/(count+1) + 0.01 of copies."""
    nodes = cluster(prefix, offset, count + 1, 1)
    before = build_ring(ClusterMap(1, tuple(nodes[:-1])))
    after = build_ring(ClusterMap(2, tuple(nodes)))
    frac = moved_slots(before, after, replicas, MOVE_TOKENS, joined=nodes[-1].node_id)
    expected = 1 / (count + 1)
    assert 0.5 * expected - 0.01 <= frac <= 1.5 * expected + 0.01, (frac, expected)


@STAT
@given(count=st.integers(3, 20), replicas=st.sampled_from([1, 3]), prefix=name_prefixes,
       offset=st.integers(0, 10**6), victim=st.integers(0, 19))
def test_removing_a_node_moves_only_its_copies(count, replicas, prefix, offset, victim):
    """One zone; removing one of ``count`` moves <= 1.5/count + 0.01 of copies, all of
    them copies the removed node held."""
    nodes = cluster(prefix, offset, count, 1)
    gone = nodes[victim % count]
    before = build_ring(ClusterMap(1, tuple(nodes)))
    after = build_ring(ClusterMap(2, tuple(nd for nd in nodes if nd is not gone)))
    frac = moved_slots(before, after, replicas, MOVE_TOKENS, left=gone.node_id)
    expected = min(replicas, count) / count / replicas  # the removed node's copy share
    assert 0.5 * expected - 0.01 <= frac <= 1.5 * expected + 0.01, (frac, expected)


@STAT
@given(per_zone=st.integers(1, 5), prefix=name_prefixes, offset=st.integers(0, 10**6),
       zone=st.integers(0, 2))
def test_adding_a_node_in_three_zones_moves_only_its_zone_share(per_zone, prefix, offset,
                                                                zone):
    """3 zones, 3 copies (one per zone): a node joining a zone of m nodes takes about
    1/(m+1) of that zone's copies, i.e. 1/(3(m+1)) of all copies."""
    nodes = cluster(prefix, offset, 3 * per_zone, 3)
    new = NodeInfo(f"{prefix}new", "127.0.0.1:9999", zone=f"z{zone}")
    before = build_ring(ClusterMap(1, tuple(nodes)))
    after = build_ring(ClusterMap(2, (*nodes, new)))
    frac = moved_slots(before, after, 3, MOVE_TOKENS, joined=new.node_id)
    expected = 1 / (3 * (per_zone + 1))
    assert frac <= 1.5 * expected + 0.01, (frac, expected)


# -- structural properties: hold for every cluster ------------------------------------

node_specs = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from([0.5, 1.0, 2.0])),  # (zone, weight)
    min_size=1, max_size=9,
)


def spec_nodes(specs, prefix: str = "n") -> list[NodeInfo]:
    return [
        NodeInfo(f"{prefix}{i}", f"127.0.0.1:{7000 + i}", zone=f"z{z}", weight=w)
        for i, (z, w) in enumerate(specs)
    ]


@EXPLORE
@given(specs=node_specs, n=st.integers(1, 6))
def test_placement_is_distinct_and_covers_zones(specs, n):
    nodes = spec_nodes(specs)
    ring = build_ring(ClusterMap(1, tuple(nodes)), vnodes_per_weight=16)
    zone = {nd.node_id: nd.zone for nd in nodes}
    zones = len(set(zone.values()))
    for t in SMALL_TOKENS:
        got = ring.locate_token(t, n)
        assert len(got) == len(set(got)) == min(n, len(nodes))
        assert len({zone[x] for x in got}) == min(n, zones)
        per_zone = collections.Counter(zone[x] for x in got)
        # Zones are used evenly unless a zone ran out of nodes.
        sizes = collections.Counter(zone.values())
        not_exhausted = [per_zone[z] for z in sizes if per_zone[z] < sizes[z]]
        assert not not_exhausted or max(per_zone.values()) <= min(not_exhausted) + 1


@EXPLORE
@given(specs=node_specs, n=st.integers(1, 5), joiner=st.tuples(st.integers(0, 4),
       st.sampled_from([0.5, 1.0, 2.0])))
def test_a_join_only_adds_the_joining_node(specs, n, joiner):
    nodes = spec_nodes(specs)
    new = NodeInfo("joiner", "127.0.0.1:9999", zone=f"z{joiner[0]}", weight=joiner[1])
    before = build_ring(ClusterMap(1, tuple(nodes)), vnodes_per_weight=16)
    after = build_ring(ClusterMap(2, (*nodes, new)), vnodes_per_weight=16)
    moved_slots(before, after, n, SMALL_TOKENS, joined="joiner")


@EXPLORE
@given(specs=node_specs, n=st.integers(1, 5), victim=st.integers(0, 8))
def test_a_leave_keeps_every_other_copy_in_place(specs, n, victim):
    nodes = spec_nodes(specs)
    gone = nodes[victim % len(nodes)]
    before = build_ring(ClusterMap(1, tuple(nodes)), vnodes_per_weight=16)
    after = build_ring(ClusterMap(2, tuple(nd for nd in nodes if nd is not gone)),
                       vnodes_per_weight=16)
    moved_slots(before, after, n, SMALL_TOKENS, left=gone.node_id)


@EXPLORE
@given(specs=node_specs, n=st.integers(0, 4), down=st.sets(st.integers(0, 8), max_size=3))
def test_handoffs_never_repeat_placement_or_excluded_nodes(specs, n, down):
    nodes = spec_nodes(specs)
    ring = build_ring(ClusterMap(1, tuple(nodes)), vnodes_per_weight=16)
    excluded = {nodes[d % len(nodes)].node_id for d in down}
    for t in SMALL_TOKENS[:100]:
        primaries = ring.locate_token(t, n)
        extra = ring.locate_extra_token(t, n, exclude=excluded)
        assert len(extra) == len(set(extra))
        assert not set(extra) & (set(primaries) | excluded)
        assert set(extra) | set(primaries) | excluded == set(ring.node_ids)
