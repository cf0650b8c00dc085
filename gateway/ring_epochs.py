"""Ring epochs for commit manifests: while the ring changes (a node added, drained or
removed, a weight or zone changed), a key's manifests may sit on its owners under an
older ring, so quorum reads and manifest writes use the owners under every ring that has
not yet been handed over.

Why (:mod:`objstore.manifest` has the manifest rules): a write's manifest is acknowledged
by W of the key's owners under the ring its gateway used. A ``quorum`` read is sure to see
it only if its R answers intersect those W. When the ring changes, the new owners of a key
may hold none of its newest manifests (a new node holds nothing; a node that was away
holds an older one), so R answers from the new owners alone can serve a stale version.

The rule:
- :class:`RingEpochs` keeps the current ring and the rings it replaced that are not yet
  *handed over* (newest first; at most ``MAX_KEPT``). Rings are told apart by what
  placement depends on: node ids, zones and weights (:func:`signature`); a map change
  that keeps them (a node down or up) is not a new epoch.
- A manifest write waits for W stores among the owners under *each* kept ring (a node
  owning the key under two rings counts for both); a ``quorum`` read waits for R answers
  among the owners under each kept ring and serves the highest commit index among all.
  So whichever kept ring a write was acknowledged under, every later read intersects it.
- Hand-over (:func:`hand_over_once`, run every second by :func:`hand_over_forever` while a
  ring is kept; it waits for this gateway's manifest writes that picked their owners
  before the ring changed): every node of the kept old rings that still holds data in the map is
  walked page by page (``GET /manifests/page``), and each key's manifests are stored on
  its owners under the current ring (``PUT /manifests/batch``), at least W of them (the
  bucket's manifest write quorum) counting the walked node itself; a node walked to the
  end is not walked again until the ring changes again. A key's newest
  acknowledged manifest is on W of its old owners, and every one of them is walked, so
  after a complete pass it is on W of its current owners: the old rings are dropped. A
  pass that cannot reach a node, or stores too few copies, keeps them and runs again; a
  ring change in the middle of a pass starts it again. Nodes ``out`` or ``removed`` in
  the map are not walked (what only they held is gone with them).
- Until then reads need R answers under every kept ring: with an old owner that never
  answers (down, not yet removed) a read can still be served from the others as long as
  R answer among each ring's owners.

Limits, documented in docs/architecture.md: the kept rings live in the gateway's memory.
A gateway started during a rebalance knows only the current ring, and a second gateway
that has not yet adopted the new map (about a second) writes by the old ring only; a
pass that already walked that key misses its write until the next ring change.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from objstore.errors import NoSuchBucket, ObjstoreError
from objstore.manifest import CommitManifest, manifest_replicas, manifest_write_quorum
from objstore.ring import Ring
from objstore.types import HOLDING_STATES, Policy

if TYPE_CHECKING:
    from gateway.context import GatewayContext
    from gateway.topology import Topology

log = logging.getLogger(__name__)

MAX_KEPT = 8  # old rings kept at most (the oldest is dropped with a warning past that)
PAGE_KEYS = 500  # keys per page walked
BATCH_BYTES = 256 * 1024  # manifest bytes per PUT /manifests/batch
BATCH_MANIFESTS = 1024
PASS_EVERY = 1.0  # seconds between hand-over passes while a ring is kept
MAX_PASS_WAIT = 30.0  # at most this long between passes after failed ones


def signature(ring: Ring) -> tuple:
    """What placement depends on: the ring's nodes, zones and weights."""
    return tuple(sorted((n.node_id, n.zone, n.weight) for n in ring.nodes))


class RingEpochs:
    """The current ring and the old rings not yet handed over (see the module docstring)."""

    def __init__(self, topology: "Topology", max_kept: int = MAX_KEPT) -> None:
        self._topology = topology
        self.max_kept = max_kept
        self._current: Ring | None = None
        self._signature: tuple = ()
        self._old: list[Ring] = []  # newest first
        self.changes = 0  # ring changes seen
        self._writing: dict[int, int] = {}  # ring changes seen when a manifest write began -> writes in flight
        self.walked: set[str] = set()  # nodes handed over to the current ring since it changed
        if topology is not None:  # (a context built without one, in tests, reads it on first use)
            self._observe()

    def _observe(self) -> None:
        ring = self._topology.ring
        if ring is self._current:
            return
        sig = signature(ring)
        if sig != self._signature:
            if self._current is not None and self._signature:  # an empty ring (before the first map) owned nothing
                self._old.insert(0, self._current)
                self._old = [r for r in self._old if signature(r) != sig]
                if len(self._old) > self.max_kept:
                    log.warning("more than %d ring changes not yet handed over: the oldest ring is no longer "
                                "consulted by quorum reads", self.max_kept)
                    del self._old[self.max_kept:]
            if self._current is not None:
                self.changes += 1
            self.walked = set()
        self._current, self._signature = ring, sig

    @property
    def current(self) -> Ring:
        self._observe()
        assert self._current is not None
        return self._current

    def old(self) -> list[Ring]:
        """The old rings not yet handed over, newest first."""
        self._observe()
        return list(self._old)

    def owner_sets(self, bucket: str, key: str, n: int) -> list[list[str]]:
        """The first ``n`` ring nodes of (bucket, key) under each kept ring, current first
        (the same nodes as a set before, in any order, are left out)."""
        sets: list[list[str]] = []
        for ring in (self.current, *self._old):
            owners = ring.locate(bucket, key, n)
            if not any(set(owners) == set(s) for s in sets):
                sets.append(owners)
        return sets

    def write_began(self) -> int:
        """A manifest write is about to pick its owners; pass the token to :meth:`write_ended`."""
        self._observe()
        self._writing[self.changes] = self._writing.get(self.changes, 0) + 1
        return self.changes

    def write_ended(self, token: int) -> None:
        left = self._writing.get(token, 0) - 1
        if left > 0:
            self._writing[token] = left
        else:
            self._writing.pop(token, None)

    def older_writes_in_flight(self) -> bool:
        """Whether a manifest write that picked its owners before the last ring change is
        still running (a hand-over pass must not begin before it has finished: it may still
        land on the old owners only)."""
        self._observe()
        return any(token < self.changes for token in self._writing)

    def handed_over(self, rings: list[Ring]) -> None:
        """Every manifest the nodes of ``rings`` held is now on its current owners."""
        done = {id(r) for r in rings}
        self._old = [r for r in self._old if id(r) not in done]


def quorum_met(sets: list[list[str]], nodes: set[str], need: int) -> bool:
    """Whether ``nodes`` hold ``need`` of every owner set (a smaller set: all of it)."""
    return all(len(nodes.intersection(s)) >= min(need, len(s)) for s in sets)


def quorum_lost(sets: list[list[str]], failed: set[str], need: int) -> bool:
    """Whether ``failed`` leaves some owner set without ``need`` others."""
    return any(len(s) - len(failed.intersection(s)) < min(need, len(s)) for s in sets)


async def _store(ctx: "GatewayContext", node_id: str, manifests: list[CommitManifest]) -> bool:
    node = ctx.topology.node(node_id)
    if node is None:
        return False
    try:
        sizes = [len(json.dumps(m.to_dict())) for m in manifests]
        batch: list[CommitManifest] = []
        size = 0
        for m, n in zip(manifests, sizes):
            if batch and (size + n > BATCH_BYTES or len(batch) >= BATCH_MANIFESTS):
                await ctx.storage.put_manifests(node.address, batch)
                batch, size = [], 0
            batch.append(m)
            size += n
        if batch:
            await ctx.storage.put_manifests(node.address, batch)
        return True
    except (ObjstoreError, OSError, asyncio.TimeoutError) as exc:
        log.info("manifest hand-over to %s failed: %s", node_id, exc)
        return False


async def _hand_page(ctx: "GatewayContext", current: Ring, source: str,
                     page: list[tuple[str, str, list[CommitManifest]]]) -> bool:
    """Store one page of ``source``'s manifests on their keys' current owners; whether
    every key reached its manifest write quorum there."""
    to: dict[str, list[CommitManifest]] = {}
    needs: list[tuple[list[str], int]] = []
    for bucket, key, manifests in page:
        try:
            b = await ctx.bucket(bucket)
        except NoSuchBucket:
            continue  # the bucket is gone: nothing to read
        policy = Policy.parse(b.policy)
        owners = current.locate(bucket, key, manifest_replicas(policy))
        needs.append((owners, min(manifest_write_quorum(policy, b.write_quorum), len(owners))))
        for node_id in owners:
            if node_id != source:
                to.setdefault(node_id, []).extend(manifests)
    targets = list(to)
    results = await asyncio.gather(*(_store(ctx, n, to[n]) for n in targets))
    holding = {n for n, ok in zip(targets, results) if ok} | {source}
    return all(len(holding.intersection(owners)) >= need for owners, need in needs)


async def hand_over_once(ctx: "GatewayContext", epochs: RingEpochs) -> bool:
    """One hand-over pass (see the module docstring); whether the old rings were dropped.
    Raises ObjstoreError/OSError/TimeoutError when a node cannot be walked."""
    old = epochs.old()
    if not old:
        return True
    if epochs.older_writes_in_flight():
        return False  # they are bounded by the storage client's timeout: the next pass
    changes, current = epochs.changes, epochs.current
    sources = sorted({n.node_id for ring in old for n in ring.nodes})
    for node_id in sources:
        node = ctx.topology.node(node_id)
        if node is None or node.state not in HOLDING_STATES or node_id in epochs.walked:
            continue  # out or removed: what only it held is gone with it; or walked already
        after = ("", "")
        while True:
            page = await ctx.storage.manifest_page(node.address, after, PAGE_KEYS)
            if epochs.changes != changes:
                return False  # the ring changed again: the next pass hands over to the new one
            if not await _hand_page(ctx, current, node_id, page):
                return False
            if len(page) < PAGE_KEYS:
                break
            after = (page[-1][0], page[-1][1])
        epochs.walked.add(node_id)
    epochs.handed_over(old)
    log.info("manifests handed over to the current ring; %d old ring(s) dropped", len(old))
    return True


async def hand_over_forever(ctx: "GatewayContext", epochs: RingEpochs, every: float = PASS_EVERY) -> None:
    """Run :func:`hand_over_once` every ``every`` seconds while an old ring is kept; after
    a pass that stopped on an unreachable node, up to ``MAX_PASS_WAIT`` seconds apart."""
    wait = every
    while True:
        await asyncio.sleep(wait)
        if not epochs.old():
            wait = every
            continue
        try:
            await hand_over_once(ctx, epochs)
            wait = every
        except (ObjstoreError, OSError, asyncio.TimeoutError) as exc:
            wait = min(2 * wait, MAX_PASS_WAIT)
            log.info("manifest hand-over pass stopped (next in %.0fs): %s", wait, exc)
