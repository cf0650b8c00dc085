"""Where each object's blobs are, by node, and which versions are below their policy.

Derived state of the metadata state machine (never snapshotted: rebuilt as a snapshot's
records load, and kept current on every record change and every node state change). Pure
and deterministic like the rest of the machine: its counts depend only on the records and
the node states.

Below policy: a blob (a version's own, or one part of a multipart version) is below its
policy when fewer than the policy's width of its copies sit on nodes in
``HOLDING_STATES``: ``replica:N`` needs N distinct holding nodes; ``ec:K+M`` needs every
shard slot non-empty on a holding node. A version is below policy when any of its blobs
is; its bytes below policy are the sizes of those blobs. A write acknowledged with W < N
copies is therefore below policy from the moment it commits, with no extra bookkeeping.

Invariants:
- ``by_node[n][bucket]`` holds exactly the keys of ``bucket`` with any version or part
  placed on node ``n`` (a key leaves it when its last such version goes).
- ``below[(bucket, key)] = (versions, bytes, spare)`` exists exactly for keys with a
  version below policy; ``spare`` is the least, over its blobs below policy, of surviving
  copies minus those needed to read (replica: 1, ec: K): -1 or less means unreadable.
  ``objects_below`` / ``bytes_below`` are the sums over ``below``; ``by_spare[s]`` holds
  the keys whose ``spare`` is ``s`` (the planner takes the lowest first).
- ``bytes_on[n]`` is the bytes of the copies of blobs placed on node ``n`` (a replica: the
  blob's size; an ec shard: its size over K, rounded up; a node absent when none): what a
  drain of ``n`` still has to move. (A bucket is deleted only once it holds no version, so
  ``drop_bucket`` has no bytes to take off.)
- A node state change re-examines only the keys placed on that node.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterable, Iterator, Mapping

from metadata.fsm import records
from objstore.types import HOLDING_STATES, NodeInfo

Versions = tuple[bytes, ...]
MAX_COPY_SHAPES = 4096  # (policy, placement) pairs whose copies are remembered
Key = tuple[str, str]


@lru_cache(maxsize=256)
def policy_width(policy: str) -> tuple[str, int, int]:
    """(kind, copies or shard slots wanted, copies needed to read) of a record's policy
    string (``replica:N`` or ``ec:K+M[;stripe=B]``); an unparsable one counts as replica:1."""
    head = policy.split(";", 1)[0]
    try:
        kind, _, rest = head.partition(":")
        if kind == "ec":
            k, _, m = rest.partition("+")
            return "ec", int(k) + int(m), int(k)
        return "replica", int(rest), 1
    except ValueError:
        return "replica", 1, 1


def survivors(policy: str, placement: tuple[str, ...], holding: Callable[[str], bool]) -> tuple[int, int, int]:
    """(surviving copies, copies wanted, copies needed to read) of one blob."""
    kind, width, needed = policy_width(policy)
    if kind == "ec":
        alive = sum(1 for n in placement[:width] if n and holding(n))
    else:
        alive = len({n for n in placement if n and holding(n)})
    return alive, width, needed


def copy_bytes(policy: str, size: int, placement: tuple[str, ...]) -> Iterator[tuple[str, int]]:
    """(node, bytes) of each copy of one blob of ``size`` bytes: the whole blob on each
    distinct node of a replica placement, a shard (``size`` over K, rounded up) per ec slot."""
    kind, width, needed = policy_width(policy)
    if kind == "ec":
        shard = -(-size // needed)
        for n in placement[:width]:
            if n:
                yield n, shard
    else:
        for n in dict.fromkeys(placement):
            if n:
                yield n, size


class PlacementIndex:
    """See the module docstring. ``nodes`` is the machine's node table (read, not owned);
    ``versions(bucket, key)`` the records of a key."""

    __slots__ = ("atoms", "nodes", "versions", "by_node", "bytes_on", "below", "by_spare", "objects_below",
                 "bytes_below", "_copies")

    def __init__(self, atoms: records.Atoms, nodes: Mapping[str, NodeInfo],
                 versions: Callable[[str, str], Versions]) -> None:
        self.atoms = atoms
        self.nodes = nodes
        self.versions = versions
        self.by_node: dict[str, dict[str, set[str]]] = {}
        self.bytes_on: dict[str, int] = {}
        self.below: dict[Key, tuple[int, int, int]] = {}
        self.by_spare: dict[int, dict[Key, None]] = {}
        self.objects_below = 0
        self.bytes_below = 0
        # (policy atom, placement atom) -> the copies of a blob there (see _copies_of): a
        # pure function of the two atoms, which never change, so nothing invalidates it.
        self._copies: dict[tuple[int, int], tuple[tuple[str, ...], int, int, int]] = {}

    def holding(self, node_id: str) -> bool:
        n = self.nodes.get(node_id)
        return n is not None and n.state in HOLDING_STATES

    # --- maintenance ------------------------------------------------------------------------

    def _placed(self, versions: Versions) -> dict[str, int]:
        """Node -> bytes of the copies placed on it (every node placing one, even of 0 bytes):
        see ``copy_bytes`` (inlined: this runs on every record change)."""
        out: dict[str, int] = {}
        for rec in versions:
            policy, blobs = records.blob_placements(rec, self.atoms)
            kind, width, needed = policy_width(policy)
            for _, size, placement, _ in blobs:
                if kind == "ec":
                    each = -(-size // needed)
                    for n in placement[:width]:
                        if n:
                            out[n] = out.get(n, 0) + each
                else:
                    for n in set(placement):
                        if n:
                            out[n] = out.get(n, 0) + size
        return out

    def _copies_of(self, policy_id: int, placement_id: int) -> tuple[tuple[str, ...], int, int, int]:
        """(the node of each copy, K for an ec policy else 0, copies wanted, copies needed
        to read) of a blob under the policy and placement of these atoms, as :meth:`_placed`
        and :meth:`examine` see them; remembered (at most MAX_COPY_SHAPES pairs)."""
        shape = self._copies.get((policy_id, placement_id))
        if shape is None:
            policy, placement = self.atoms.value(policy_id), self.atoms.value(placement_id)
            kind, width, needed = policy_width(policy)
            if kind == "ec":
                shape = (tuple(n for n in placement[:width] if n), needed, width, needed)
            else:
                shape = (tuple(n for n in dict.fromkeys(placement) if n), 0, width, needed)
            if len(self._copies) >= MAX_COPY_SHAPES:
                self._copies.clear()
            self._copies[(policy_id, placement_id)] = shape
        return shape

    def _summary(self, versions: Versions) -> tuple[dict[str, int], tuple[int, int, int] | None]:
        """(``_placed(versions)``, ``examine(versions)``) in one pass for the usual key (no
        record, or one whose only blob is its own); the two calls for any other."""
        if not versions:
            return {}, None
        blob = records.own_blob(versions[0]) if len(versions) == 1 else None
        if blob is None:
            return self._placed(versions), self.examine(versions)
        size, policy_id, placement_id = blob
        nodes, shard_of, width, needed = self._copies_of(policy_id, placement_id)
        each = -(-size // shard_of) if shard_of else size
        placed: dict[str, int] = {}
        alive = 0
        nodes_info, holding_states = self.nodes, HOLDING_STATES
        for n in nodes:
            placed[n] = placed.get(n, 0) + each
            info = nodes_info.get(n)
            if info is not None and info.state in holding_states:
                alive += 1
        return placed, ((1, size, alive - needed) if alive < width else None)

    def changed(self, bucket: str, key: str, old: Versions, new: Versions) -> None:
        """The records of (bucket, key) went from ``old`` to ``new`` (newest first)."""
        was = self._summary(old)[0]
        now, below = self._summary(new)
        if was != now:
            bytes_on = self.bytes_on
            for n, b in now.items():
                if b:
                    bytes_on[n] = bytes_on.get(n, 0) + b
            for n, b in was.items():
                if b:
                    left = bytes_on[n] - b
                    if left:
                        bytes_on[n] = left
                    else:
                        del bytes_on[n]
        before, after = was.keys(), now.keys()
        for n in before - after:
            keys = self.by_node[n][bucket]
            keys.discard(key)
            if not keys:
                del self.by_node[n][bucket]
                if not self.by_node[n]:
                    del self.by_node[n]
        for n in after - before:
            self.by_node.setdefault(n, {}).setdefault(bucket, set()).add(key)
        self._set_below((bucket, key), below)

    def add_new(self, bucket: str, items: Iterable[tuple[str, Versions]]) -> None:
        """Keys of ``bucket`` not indexed yet, with their records (a snapshot's restore):
        as :meth:`changed` from no records for each. A key whose one record has only its
        own blob (the common case) takes a short path: what depends on the blob's policy
        and placement alone (its copies' nodes, survivors on holding nodes) is worked out
        once per distinct pair, and such keys are gathered per pair, their bytes summed, and
        added to the nodes' key sets and byte counts once per pair at the end."""
        shapes: dict[tuple[int, int], tuple[list[str], int, int, int, int]] = {}
        groups: dict[tuple[int, int], tuple[list[str], list[int]]] = {}  # pair -> its keys, their copy bytes
        memo: dict = {}
        own_blob = records.own_blob
        for key, versions in items:
            blob = own_blob(versions[0]) if len(versions) == 1 else None
            if blob is None:
                self._add_keys(bucket, [key], self._placed(versions))
                below = self.examine(versions, memo)
                if below is not None:
                    self._set_below((bucket, key), below)
                continue
            size, policy_id, placement_id = blob
            pair = (policy_id, placement_id)
            shape = shapes.get(pair)
            if shape is None:
                shape = shapes[pair] = self._shape(self.atoms.value(policy_id), self.atoms.value(placement_id))
                groups[pair] = ([], [0])
            _, shard_of, alive, width, needed = shape
            keys, total = groups[pair]
            keys.append(key)
            total[0] += -(-size // shard_of) if shard_of else size
            if alive < width:
                self._set_below((bucket, key), (1, size, alive - needed))
        for pair, (keys, total) in groups.items():
            nodes = shapes[pair][0]
            self._add_keys(bucket, keys, {n: nodes.count(n) * total[0] for n in nodes})

    def _add_keys(self, bucket: str, keys: list[str], placed: Mapping[str, int]) -> None:
        """``keys`` of ``bucket`` have copies on the nodes of ``placed``, that many bytes on each."""
        bytes_on = self.bytes_on
        for n, b in placed.items():
            if b:
                bytes_on[n] = bytes_on.get(n, 0) + b
            self.by_node.setdefault(n, {}).setdefault(bucket, set()).update(keys)

    def _shape(self, policy: str, placement: tuple[str, ...]) -> tuple[list[str], int, int, int, int]:
        """(the node of each copy; K for an ec policy, else 0; copies on holding nodes;
        copies wanted; copies needed to read) of a blob under ``policy`` at ``placement``
        (as :meth:`_placed` and :meth:`examine` see it)."""
        kind, width, needed = policy_width(policy)
        nodes = [n for n in placement[:width] if n] if kind == "ec" else [n for n in set(placement) if n]
        alive = survivors(policy, placement, self.holding)[0]
        return nodes, needed if kind == "ec" else 0, alive, width, needed

    def node_changed(self, node_id: str) -> None:
        """Node ``node_id``'s state changed: re-examine the keys placed on it."""
        for bucket, keys in list(self.by_node.get(node_id, {}).items()):
            for key in list(keys):
                self._set_below((bucket, key), self.examine(self.versions(bucket, key)))

    def drop_bucket(self, bucket: str) -> None:
        """Forget every key of a deleted bucket."""
        for n in list(self.by_node):
            self.by_node[n].pop(bucket, None)
            if not self.by_node[n]:
                del self.by_node[n]
        for k in [k for k in self.below if k[0] == bucket]:
            self._set_below(k, None)

    def _set_below(self, k: Key, entry: tuple[int, int, int] | None) -> None:
        old = self.below.get(k)
        if old == entry:
            return
        if old is not None:
            self.objects_below -= old[0]
            self.bytes_below -= old[1]
            group = self.by_spare[old[2]]
            del group[k]
            if not group:
                del self.by_spare[old[2]]
            del self.below[k]
        if entry is not None:
            self.objects_below += entry[0]
            self.bytes_below += entry[1]
            self.below[k] = entry
            self.by_spare.setdefault(entry[2], {})[k] = None

    # --- reads ------------------------------------------------------------------------------

    def examine(self, versions: Versions, memo: dict | None = None) -> tuple[int, int, int] | None:
        """(versions below policy, their bytes below policy, least spare) of a key's
        records, or None when none is below policy. ``memo`` (kept by the caller while
        no node state changes) remembers :func:`survivors` per (policy, placement)."""
        count = size = 0
        spare: int | None = None
        for rec in versions:
            policy, blobs = records.blob_placements(rec, self.atoms)
            hit = False
            for _, blob_size, placement, _ in blobs:
                if memo is None:
                    alive, width, needed = survivors(policy, placement, self.holding)
                else:
                    found = memo.get((policy, placement))
                    if found is None:
                        found = memo[(policy, placement)] = survivors(policy, placement, self.holding)
                    alive, width, needed = found
                if alive < width:
                    hit = True
                    size += blob_size
                    spare = alive - needed if spare is None else min(spare, alive - needed)
            count += hit
        return None if spare is None else (count, size, spare)

    def bytes_placed_on(self, node_id: str) -> int:
        """Bytes of the copies of every object's blobs placed on ``node_id``."""
        return self.bytes_on.get(node_id, 0)

    def keys_on(self, node_id: str) -> Iterator[Key]:
        for bucket, keys in self.by_node.get(node_id, {}).items():
            for key in keys:
                yield bucket, key

    def below_keys(self) -> Iterator[Key]:
        """Keys below policy, those with the fewest spare copies first; keys with a blob no
        longer readable (spare below 0: nothing can rebuild it) last. Do not apply commands
        while iterating."""
        spares = sorted(self.by_spare)
        for spare in [s for s in spares if s >= 0] + [s for s in spares if s < 0]:
            yield from self.by_spare[spare]

    def counts(self) -> dict[str, int]:
        return {"objects_below_policy": self.objects_below, "bytes_below_policy": self.bytes_below}

    def rebuild(self, keys: Iterable[tuple[str, str, Versions]]) -> None:
        """Start over from every key's records."""
        self.by_node.clear()
        self.bytes_on.clear()
        self.below.clear()
        self.by_spare.clear()
        self.objects_below = self.bytes_below = 0
        for bucket, key, versions in keys:
            self.changed(bucket, key, (), versions)
