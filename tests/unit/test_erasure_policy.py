"""Checks of ec:K+M data policies against a cluster, and the per-zone shard bound."""
from __future__ import annotations

import pytest

from objstore.erasure import check_ec_policy, max_shards_per_zone, survives_zone_loss
from objstore.errors import InvalidArgument
from objstore.types import Policy


def test_a_fitting_ec_policy_passes():
    policy = Policy.parse("ec:4+2")
    assert check_ec_policy(policy, 6) is policy
    assert check_ec_policy(Policy.parse("ec:2+1"), 3) == Policy("ec", 3, 2, 1)


@pytest.mark.parametrize("text, nodes, message", [
    ("ec:1+2", 6, "Data policy ec:1+2 needs K >= 2 data shards; for whole copies use replica:3."),
    ("ec:4+0", 6, "Data policy ec:4+0 needs M >= 1 parity shard."),
    ("ec:4+2", 5, "Data policy ec:4+2 needs K+M = 6 storage nodes (one per shard); the cluster has 5."),
    ("ec:8+4", 0, "Data policy ec:8+4 needs K+M = 12 storage nodes (one per shard); the cluster has 0."),
    ("replica:3", 6, "Data policy replica:3 is not an erasure-coded policy (ec:K+M)."),
])
def test_an_unfit_policy_is_invalid_argument_naming_the_limit(text, nodes, message):
    with pytest.raises(InvalidArgument) as err:
        check_ec_policy(Policy.parse(text), nodes)
    assert err.value.message == message and err.value.status == 400


@pytest.mark.parametrize("sizes, shards, bound", [
    ([2, 2, 2], 6, 2),
    ([3, 3, 3], 6, 2),
    ([1, 1, 4], 6, 4),
    ([1, 5], 4, 3),
    ([6], 6, 6),
    ([4, 4, 4, 4], 9, 3),
    ([0, 3, 3], 5, 3),
    ([5, 5], 0, 0),
])
def test_max_shards_per_zone(sizes, shards, bound):
    assert max_shards_per_zone(sizes, shards) == bound


def test_max_shards_per_zone_needs_enough_nodes():
    with pytest.raises(ValueError, match="6 shards need 6 nodes; the zones have 5"):
        max_shards_per_zone([2, 3], 6)


def test_zone_loss():
    assert survives_zone_loss(Policy.parse("ec:4+2"), [2, 2, 2])
    assert not survives_zone_loss(Policy.parse("ec:4+2"), [1, 1, 4])
    assert not survives_zone_loss(Policy.parse("ec:4+2"), [3, 3])
    assert survives_zone_loss(Policy.parse("ec:6+3"), [3, 3, 3])
