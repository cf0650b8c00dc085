"""Building rings from cluster maps, and describing how they share out the hash space.

Building is reproducible with no randomness at all: every token is an xxh64 of a node id
and vnode index, so the same cluster map and parameters give the same ring in every
process on every host. ``describe`` is exact (it sums arc lengths of the 64-bit circle,
it does not sample keys) and is what ``objstore status`` shows per node.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from objstore.ring.ring import (
    DEFAULT_INCLUDE_STATES,
    DEFAULT_VNODES_PER_WEIGHT,
    TOKEN_SPACE,
    Ring,
)
from objstore.types import ClusterMap


def build_ring(
    cluster_map: ClusterMap,
    vnodes_per_weight: int = DEFAULT_VNODES_PER_WEIGHT,
    include_states: Iterable[str] = DEFAULT_INCLUDE_STATES,
) -> Ring:
    """The ring of ``cluster_map``'s nodes whose state is in ``include_states``.

    Raises ValueError on a duplicate node id or ``vnodes_per_weight < 1``.
    """
    return Ring(cluster_map, vnodes_per_weight, include_states)


def describe(ring: Ring, replicas: int = 3) -> dict[str, Any]:
    """Per-node shares of the hash space, as JSON-ready data.

    For each node in the ring: ``zone``, ``weight``, ``state``, ``vnodes``,
    ``expected_share`` (weight / total weight), ``share`` (fraction of objects whose
    first placement is this node) and ``replica_share`` (fraction of all stored copies
    held by this node when every object has ``replicas`` copies, zone-aware). Shares
    sum to 1 over nodes. Cost: one ``locate`` per vnode (about 100 ms at 12,800 vnodes).
    """
    tokens = ring.tokens
    owners = ring.vnode_owners()
    share = {nid: 0 for nid in ring.node_ids}
    replica = {nid: 0 for nid in ring.node_ids}
    vnodes = {nid: 0 for nid in ring.node_ids}
    copies = min(max(replicas, 0), len(ring))
    for i, owner in enumerate(owners):
        prev = tokens[i - 1]  # for i == 0 this is the last token: the wrapping arc
        arc = (tokens[i] - prev) % TOKEN_SPACE
        if len(tokens) == 1:
            arc = TOKEN_SPACE
        share[owner] += arc
        vnodes[owner] += 1
        if copies:
            # Every object token in [prev, tokens[i]) walks from position i.
            for nid in ring.locate_token(prev, copies):
                replica[nid] += arc
    total_weight = sum(n.weight for n in ring.nodes)
    nodes: dict[str, Any] = {}
    for n in ring.nodes:
        nid = n.node_id
        nodes[nid] = {
            "zone": n.zone,
            "weight": n.weight,
            "state": n.state,
            "vnodes": vnodes[nid],
            "expected_share": n.weight / total_weight,
            "share": share[nid] / TOKEN_SPACE,
            "replica_share": replica[nid] / (TOKEN_SPACE * copies) if copies else 0.0,
        }
    return {
        "epoch": ring.epoch,
        "vnodes_per_weight": ring.vnodes_per_weight,
        "include_states": list(ring.include_states),
        "replicas": copies,
        "total_vnodes": len(tokens),
        "zones": sorted({n.zone for n in ring.nodes}),
        "nodes": nodes,
    }
