"""Whether an ``ec:K+M`` data policy can work on a cluster: pure checks for bucket creation.

``Policy.parse`` (objstore.types) accepts the syntax; these add what erasure coding needs:
- K >= 2 (``ec:1+M`` is replication at M+1 times the storage; use ``replica:N``);
- M >= 1 (without parity a lost node loses data);
- K + M <= the number of storage nodes (shard i of every stripe goes to its own node).
And, given zone sizes, how many shards the worst zone holds (``max_shards_per_zone``): the
least any placement can achieve, and what ``Ring.locate`` achieves (tests/unit).
"""
from __future__ import annotations

from collections.abc import Iterable

from objstore.errors import InvalidArgument
from objstore.types import Policy

MIN_DATA_SHARDS = 2
MIN_PARITY_SHARDS = 1


def check_ec_policy(policy: Policy, storage_nodes: int) -> Policy:
    """``policy`` if it is an erasure-coded policy this cluster can hold.

    Raises InvalidArgument, naming the limit, for a non-ec policy, K < 2, M < 1, or
    K + M > ``storage_nodes``.
    """
    if policy.kind != "ec":
        raise InvalidArgument(f"Data policy {policy} is not an erasure-coded policy (ec:K+M).")
    if policy.k < MIN_DATA_SHARDS:
        raise InvalidArgument(
            f"Data policy {policy} needs K >= {MIN_DATA_SHARDS} data shards; "
            f"for whole copies use replica:{policy.n}."
        )
    if policy.m < MIN_PARITY_SHARDS:
        raise InvalidArgument(f"Data policy {policy} needs M >= {MIN_PARITY_SHARDS} parity shard.")
    if policy.n > storage_nodes:
        raise InvalidArgument(
            f"Data policy {policy} needs K+M = {policy.n} storage nodes (one per shard); "
            f"the cluster has {storage_nodes}."
        )
    return policy


def max_shards_per_zone(zone_sizes: Iterable[int], shards: int) -> int:
    """The fewest shards the fullest zone can hold when ``shards`` go to distinct nodes.

    The least L with ``sum(min(size, L)) >= shards``: ceil(shards / Z) when every one of
    the Z zones has that many nodes, more when small zones force the rest into big ones.
    Raises ValueError when there are fewer nodes than shards.
    """
    sizes = [s for s in zone_sizes if s > 0]
    if shards > sum(sizes):
        raise ValueError(f"{shards} shards need {shards} nodes; the zones have {sum(sizes)}")
    level = 0
    while sum(min(s, level) for s in sizes) < shards:
        level += 1
    return level


def survives_zone_loss(policy: Policy, zone_sizes: Iterable[int]) -> bool:
    """Whether losing any one whole zone leaves K shards of every stripe (zone-spread placement)."""
    return max_shards_per_zone(zone_sizes, policy.n) <= policy.m
