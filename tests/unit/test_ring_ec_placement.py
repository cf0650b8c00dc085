"""The placement rule for erasure-coded objects, proved on ``Ring.locate`` as it is.

Rule: the K+M shards of an object go to K+M distinct nodes, shard i to ``locate(...)[i]``,
spread over zones as evenly as the zone sizes allow: no zone holds more than
``max_shards_per_zone(zone sizes, K+M)`` shards, the least any placement can achieve
(ceil((K+M)/Z) with Z zones that each have that many nodes). So whenever that bound is
<= M, losing one whole zone loses at most M shards and every stripe stays readable.
``locate``'s greedy walk (next pick from a least-used zone with nodes left) is
water-filling, which is optimal; these tests check it over random clusters.
"""
from __future__ import annotations

import collections
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore.erasure import max_shards_per_zone, survives_zone_loss
from objstore.ring import build_ring, object_token
from objstore.types import ClusterMap, NodeInfo, Policy

TOKENS = [object_token("ec", f"obj-{i:04d}") for i in range(150)]
EXPLORE = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clusters(draw):
    """Nodes over 1..5 zones of 1..6 nodes, mixed weights, a few out of the ring."""
    zone_sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    nodes = []
    for z, count in enumerate(zone_sizes):
        for i in range(count):
            nodes.append(NodeInfo(
                f"s{z}-{i}", f"127.0.0.1:{7000 + len(nodes)}", zone=f"z{z}",
                weight=draw(st.sampled_from([0.5, 1.0, 2.0])),
                state=draw(st.sampled_from(["up"] * 6 + ["out", "draining"])),
            ))
    return nodes


def zone_counts(nodes: list[NodeInfo]) -> dict[str, int]:
    return dict(collections.Counter(n.zone for n in nodes if n.state == "up"))


@EXPLORE
@given(nodes=clusters(), k=st.integers(2, 8), m=st.integers(1, 4))
def test_shards_are_distinct_and_as_spread_as_the_zones_allow(nodes, k, m):
    sizes = zone_counts(nodes)
    n = k + m
    if n > sum(sizes.values()):
        return
    ring = build_ring(ClusterMap(1, tuple(nodes)))
    zone_of = {nd.node_id: nd.zone for nd in nodes}
    bound = max_shards_per_zone(sizes.values(), n)
    for token in TOKENS:
        got = ring.locate_token(token, n)
        assert len(got) == n == len(set(got))
        per_zone = collections.Counter(zone_of[x] for x in got)
        assert max(per_zone.values()) == bound  # the least any placement can do
        for zone, size in sizes.items():  # no zone left short while another is fuller
            assert per_zone[zone] >= min(size, bound - 1)
        if all(size >= math.ceil(n / len(sizes)) for size in sizes.values()):
            assert bound == math.ceil(n / len(sizes))
        if bound <= m:
            assert survives_zone_loss(Policy("ec", n, k, m), sizes.values())
            assert all(n - c >= k for c in per_zone.values())  # any one zone down: K remain


def test_four_plus_two_on_six_nodes_in_three_zones_puts_two_in_each():
    nodes = tuple(NodeInfo(f"n{i}", f"127.0.0.1:{7000 + i}", zone=f"z{i % 3}") for i in range(6))
    ring = build_ring(ClusterMap(1, nodes))
    zone_of = {nd.node_id: nd.zone for nd in nodes}
    policy = Policy.parse("ec:4+2")
    assert max_shards_per_zone([2, 2, 2], policy.n) == 2 and survives_zone_loss(policy, [2, 2, 2])
    for token in TOKENS:
        got = ring.locate_token(token, policy.n)
        assert sorted(got) == sorted(zone_of)
        assert collections.Counter(zone_of[x] for x in got) == {"z0": 2, "z1": 2, "z2": 2}
