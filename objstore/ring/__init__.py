"""Placement: the consistent-hash ring over storage nodes (pure, no IO)."""
from objstore.ring.builder import build_ring, describe
from objstore.ring.ring import (
    DEFAULT_INCLUDE_STATES,
    DEFAULT_VNODES_PER_WEIGHT,
    RING_SEED,
    Ring,
    object_token,
    vnode_count,
    vnode_token,
)

__all__ = [
    "DEFAULT_INCLUDE_STATES",
    "DEFAULT_VNODES_PER_WEIGHT",
    "RING_SEED",
    "Ring",
    "build_ring",
    "describe",
    "object_token",
    "vnode_count",
    "vnode_token",
]
