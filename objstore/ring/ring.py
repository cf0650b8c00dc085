"""The consistent-hash ring: where the replicas or shards of (bucket, key) live.

A ``Ring`` is built from a ``ClusterMap`` and never changes afterwards. Every eligible
node (state in ``include_states``, weight > 0) owns ``round(weight * vnodes_per_weight)``
virtual nodes (at least one); vnode ``i`` of node ``n`` sits at token
``xxh64(f"{n}#{i}", RING_SEED)`` on the 64-bit circle. An object sits at
``xxh64(bucket + "\\0" + key, RING_SEED)``.

Invariants:
- ``locate(bucket, key, n)`` is a pure function of (cluster map, build parameters,
  bucket, key, n): no clock, no randomness, no disk, no cache.
- The result holds distinct node ids; it is shorter than ``n`` only when fewer than ``n``
  nodes are eligible.
- Zone-aware: walking clockwise from the object's token, the next pick is the first
  node not yet picked whose zone has the fewest picks so far (among zones that still
  have unpicked nodes). So ``n`` replicas cover ``min(n, zones)`` distinct zones, and
  replicas spread evenly over zones when ``n`` exceeds the zone count.
- Prefix-stable: ``locate(b, k, n)`` is the first ``n`` entries of ``locate(b, k, n + 1)``,
  and ``locate_extra(b, k, n)`` (no exclusions) continues that same sequence.
"""
from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable

import xxhash

from objstore.types import RING_STATES, ClusterMap, NodeInfo

RING_SEED = 0x6F626A73  # fixed forever: changing it moves every object
DEFAULT_VNODES_PER_WEIGHT = 128
DEFAULT_INCLUDE_STATES: tuple[str, ...] = RING_STATES
TOKEN_SPACE = 1 << 64


def object_token(bucket: str, key: str) -> int:
    """The ring position of (bucket, key): xxh64 of ``bucket + "\\0" + key`` in UTF-8.

    Lone surrogates (which S3 keys cannot contain) are encoded with ``surrogatepass``
    so that hashing never raises.
    """
    data = bucket.encode("utf-8", "surrogatepass") + b"\0" + key.encode("utf-8", "surrogatepass")
    return xxhash.xxh64_intdigest(data, RING_SEED)


def vnode_token(node_id: str, index: int) -> int:
    """The ring position of virtual node ``index`` of ``node_id``."""
    return xxhash.xxh64_intdigest(f"{node_id}#{index}".encode("utf-8", "surrogatepass"), RING_SEED)


def vnode_count(weight: float, vnodes_per_weight: int) -> int:
    """Virtual nodes for a node of ``weight``: 0 for weight <= 0, else at least 1."""
    if weight <= 0:
        return 0
    return max(1, int(weight * vnodes_per_weight + 0.5))


class Ring:
    """An immutable consistent-hash ring over the eligible nodes of a cluster map.

    Raises ValueError if the map names a node id twice or ``vnodes_per_weight < 1``.
    """

    __slots__ = (
        "_cluster_map", "_vnodes_per_weight", "_include_states", "_nodes", "_ids",
        "_zone_of", "_zone_sizes", "_tokens", "_owners", "_index_of",
    )

    def __init__(
        self,
        cluster_map: ClusterMap,
        vnodes_per_weight: int = DEFAULT_VNODES_PER_WEIGHT,
        include_states: Iterable[str] = DEFAULT_INCLUDE_STATES,
    ) -> None:
        if vnodes_per_weight < 1:
            raise ValueError(f"vnodes_per_weight must be >= 1, got {vnodes_per_weight}")
        states = tuple(include_states)
        seen: set[str] = set()
        for n in cluster_map.nodes:
            if n.node_id in seen:
                raise ValueError(f"node id {n.node_id!r} appears twice in the cluster map")
            seen.add(n.node_id)
        nodes = sorted(
            (n for n in cluster_map.nodes
             if n.state in states and vnode_count(n.weight, vnodes_per_weight) > 0),
            key=lambda n: n.node_id,
        )
        zones = sorted({n.zone for n in nodes})
        zone_index = {z: i for i, z in enumerate(zones)}
        zone_of = tuple(zone_index[n.zone] for n in nodes)
        zone_sizes = [0] * len(zones)
        for z in zone_of:
            zone_sizes[z] += 1
        vnodes: list[tuple[int, int]] = []
        for idx, n in enumerate(nodes):
            for i in range(vnode_count(n.weight, vnodes_per_weight)):
                vnodes.append((vnode_token(n.node_id, i), idx))
        vnodes.sort()  # ties (never seen in practice) break by node id order
        self._cluster_map = cluster_map
        self._vnodes_per_weight = vnodes_per_weight
        self._include_states = states
        self._nodes = tuple(nodes)
        self._ids = tuple(n.node_id for n in nodes)
        self._index_of = {nid: i for i, nid in enumerate(self._ids)}
        self._zone_of = zone_of
        self._zone_sizes = tuple(zone_sizes)
        self._tokens = tuple(t for t, _ in vnodes)
        self._owners = tuple(o for _, o in vnodes)

    # -- what the ring is made of -------------------------------------------------

    @property
    def epoch(self) -> int:
        """The epoch of the cluster map this ring was built from."""
        return self._cluster_map.epoch

    @property
    def cluster_map(self) -> ClusterMap:
        return self._cluster_map

    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        """The nodes that take placements, sorted by node id."""
        return self._nodes

    @property
    def node_ids(self) -> tuple[str, ...]:
        return self._ids

    @property
    def vnodes_per_weight(self) -> int:
        return self._vnodes_per_weight

    @property
    def include_states(self) -> tuple[str, ...]:
        return self._include_states

    @property
    def tokens(self) -> tuple[int, ...]:
        """Sorted vnode tokens; ``vnode_owners()[i]`` owns ``tokens[i]``."""
        return self._tokens

    def vnode_owners(self) -> tuple[str, ...]:
        """The node id owning each vnode, aligned with ``tokens``."""
        return tuple(self._ids[o] for o in self._owners)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._index_of

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"Ring(epoch={self.epoch}, nodes={len(self._ids)}, vnodes={len(self._tokens)})"

    # -- placement ------------------------------------------------------------------

    def locate(self, bucket: str, key: str, n: int) -> list[str]:
        """Node ids for the ``n`` replicas/shards of (bucket, key), in placement order.

        Distinct nodes, zone-spread (see the module docstring); fewer than ``n`` only
        when the ring has fewer than ``n`` nodes.
        """
        return self.locate_token(object_token(bucket, key), n)

    def locate_token(self, token: int, n: int) -> list[str]:
        """``locate`` for an object already hashed with ``object_token``."""
        if n <= 0 or not self._tokens:
            return []
        picked = self._select(bisect_right(self._tokens, token), n, (), ())
        return [self._ids[i] for i in picked]

    def locate_extra(
        self, bucket: str, key: str, n: int,
        exclude: Collection[str] = frozenset(), limit: int | None = None,
    ) -> list[str]:
        """Handoff candidates for (bucket, key): nodes after the first ``n``, in order.

        Never returns one of the ``n`` placement nodes nor a node in ``exclude``.
        Placement nodes that are excluded (e.g. down) leave their zone under-used, so
        the first handoffs come from those zones where possible. With an empty
        ``exclude`` the result continues the ``locate`` sequence. At most ``limit``
        ids (all remaining nodes when None).
        """
        return self.locate_extra_token(object_token(bucket, key), n, exclude, limit)

    def locate_extra_token(
        self, token: int, n: int,
        exclude: Collection[str] = frozenset(), limit: int | None = None,
    ) -> list[str]:
        """``locate_extra`` for an object already hashed with ``object_token``."""
        if not self._tokens:
            return []
        start = bisect_right(self._tokens, token)
        primaries = self._select(start, max(n, 0), (), ())
        excluded = {self._index_of[x] for x in exclude if x in self._index_of}
        live = [p for p in primaries if p not in excluded]
        count = len(self._ids) if limit is None else limit
        if count <= 0:
            return []
        picked = self._select(start, count, [*primaries, *excluded], live)
        return [self._ids[i] for i in picked]

    def _select(
        self, start: int, count: int, skip: Iterable[int], counted: Iterable[int],
    ) -> list[int]:
        """Greedy zone-balanced walk from vnode position ``start`` (node indices).

        ``skip``: nodes never picked. ``counted``: nodes whose zones count as already
        used (they must also be in ``skip``).
        """
        tokens_len = len(self._owners)
        owners = self._owners
        zone_of = self._zone_of
        seen = set(skip)
        result: list[int] = []
        pos = start
        if len(self._zone_sizes) == 1:  # one zone: distinct nodes in walk order
            remaining = len(self._ids) - len(seen)
            count = min(count, remaining)
            while len(result) < count:
                node = owners[pos % tokens_len]
                pos += 1
                if node not in seen:
                    seen.add(node)
                    result.append(node)
            return result
        left = list(self._zone_sizes)  # unpicked, unskipped nodes per zone
        for node in seen:
            left[zone_of[node]] -= 1
        used = [0] * len(left)  # picks per zone
        for node in counted:
            used[zone_of[node]] += 1
        remaining = sum(left)
        count = min(count, remaining)
        deferred: list[int] = []  # walked past, not yet picked, in walk order
        while len(result) < count:
            level = min(u for u, nl in zip(used, left) if nl > 0)
            pick = -1
            for j, node in enumerate(deferred):
                if used[zone_of[node]] == level:
                    pick = node
                    del deferred[j]
                    break
            while pick < 0:
                # A zone at `level` still has an unpicked node, so the walk finds it
                # within one lap of the ring.
                node = owners[pos % tokens_len]
                pos += 1
                if node in seen:
                    continue
                seen.add(node)
                if used[zone_of[node]] == level:
                    pick = node
                else:
                    deferred.append(node)
            zone = zone_of[pick]
            used[zone] += 1
            left[zone] -= 1
            result.append(pick)
        return result
