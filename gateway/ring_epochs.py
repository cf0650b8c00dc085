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
- The metadata service keeps the rings not yet *handed over* in the cluster map
  (``ClusterMap.kept_rings``, newest first, at most 8; ``ring_epoch``: the epoch the
  current ring came into effect at; :mod:`metadata.fsm.machine`), so every gateway, one
  started during a rebalance included, consults the same rings. Rings are told apart by
  what placement depends on: node ids, zones and weights (``placement_of``); a map change
  that keeps them (a node down or up) is not a new ring.
- A manifest write waits for W stores among the owners under *each* kept ring (a node
  owning the key under two rings counts for both); a ``quorum`` read waits for R answers
  among the owners under each kept ring and serves the highest commit index among all.
  So whichever kept ring a write was acknowledged under, every later read intersects it.
- Each manifest store names the ring epoch it was placed by; a node refuses one placed by
  a ring older than its *fence* (:mod:`objstore.node.manifests`), and a gateway whose
  commit reported a newer map epoch than its own adopts that map before placing the
  manifest (:func:`gateway.datapath.manifests.publish`); on a refusal it adopts the newer
  map and places the manifest again, never acknowledging a write placed by a ring already
  handed over.
- Hand-over (:func:`hand_over_once`, run every second by :func:`hand_over_forever` while a
  ring is kept; it waits for this gateway's manifest writes that picked their owners
  before the ring changed): every node of the kept old rings that still holds data in the
  map is walked page by page (``GET /manifests/page``), the first page raising the node's
  fence to the current ring epoch, and each key's manifests are stored on its owners
  under the current ring (``PUT /manifests/batch``), at least W of them (the bucket's
  manifest write quorum) counting the walked node itself; a node walked to the end is not
  walked again until the ring changes again. A key's newest acknowledged manifest is on W
  of its old owners, and every one of them is walked after its fence rose, so after a
  complete pass it is on W of its current owners: the gateway then commits
  ``HandOverRings(ring_epoch)`` through Raft and every gateway drops the old rings with the
  next map. A pass that cannot reach a node, or stores too few copies, keeps them and runs
  again; a ring change in the middle of a pass starts it again. Nodes ``out`` or
  ``removed`` in the map are not walked (what only they held is gone with them). Several
  gateways may run passes at once: each is complete on its own, the second command
  changes nothing.
- Until then reads need R answers under every kept ring: with an old owner that never
  answers (down, not yet removed) a read can still be served from the others as long as
  R answer among each ring's owners.
- An old ring's owner the map has ``out`` or ``removed`` (or no longer has) is left out of
  that ring's owner set (:meth:`RingEpochs.owner_sets`): hand-over does not walk it, so
  what only it held is gone with it, and it never answers again. The set's quorum is then
  W (R) of the others, all of them when fewer are left. A write acknowledged under that
  ring by W owners and with g of them gone is still on W - g of the N - g others, which R
  of them (or all of them) meet whenever R + W > N, unless every owner that stored it is
  gone (with W = 1, the one node that held it). Counting the
  node instead made every write and quorum read of its keys a 503 from its removal until
  a pass dropped the ring, wherever the quorum needed it (an ``ec:K+1`` key's two
  manifest replicas, W = R = 2).

docs/architecture.md ("Consistency") walks through the races this closes.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from objstore.errors import NoSuchBucket, ObjstoreError, ServiceUnavailable
from objstore.manifest import CommitManifest, manifest_replicas, manifest_write_quorum
from objstore.ring import Ring, build_ring
from objstore.types import HOLDING_STATES, ClusterMap, KeptRing, NodeInfo, Policy

from gateway.topology import locate

if TYPE_CHECKING:
    from gateway.context import GatewayContext
    from gateway.topology import Topology

log = logging.getLogger(__name__)

PAGE_KEYS = 500  # keys per page walked
BATCH_BYTES = 256 * 1024  # manifest bytes per PUT /manifests/batch
BATCH_MANIFESTS = 1024
PASS_EVERY = 1.0  # seconds between hand-over passes while a ring is kept
MAX_PASS_WAIT = 30.0  # at most this long between passes after failed ones
CATCH_UP_TRIES = 3  # map fetches a write waits for before giving up (503)


def kept_ring(kept: KeptRing) -> Ring:
    """The ring of a kept placement (only ids, zones and weights matter to placement)."""
    return build_ring(ClusterMap(kept.epoch, tuple(NodeInfo(i, "", zone=z, weight=w) for i, z, w in kept.placement)))


class RingEpochs:
    """The current ring and the old rings not yet handed over, as the gateway's cluster map
    has them (see the module docstring)."""

    def __init__(self, topology: "Topology") -> None:
        self._topology = topology
        self._map: ClusterMap | None = None  # the map the rings below were read from
        self._old: list[Ring] = []
        self._built: dict[KeptRing, Ring] = {}
        self._writing: dict[int, int] = {}  # ring epoch a manifest write began under -> writes in flight
        self.walked: set[str] = set()  # nodes handed over to the current ring since it came into effect
        self._walked_for = 0  # the ring epoch ``walked`` is about
        self._refreshing: asyncio.Future | None = None

    def _observe(self) -> None:
        cmap = self._topology.map
        if cmap is self._map:
            return
        if self._map is None or cmap.kept_rings != self._map.kept_rings:
            self._built = {k: self._built.get(k) or kept_ring(k) for k in cmap.kept_rings}
            self._old = [self._built[k] for k in cmap.kept_rings]
        if cmap.ring_epoch != self._walked_for:
            self.walked, self._walked_for = set(), cmap.ring_epoch
        self._map = cmap

    @property
    def current(self) -> Ring:
        return self._topology.ring

    @property
    def ring_epoch(self) -> int:
        """The epoch the current ring came into effect at (what manifest stores name)."""
        self._observe()
        return self._topology.map.ring_epoch

    def old(self) -> list[Ring]:
        """The old rings not yet handed over, newest first."""
        self._observe()
        return list(self._old)

    def owner_sets(self, bucket: str, key: str, n: int) -> list[list[str]]:
        """The first ``n`` ring nodes of (bucket, key) under each kept ring, current first
        (the same nodes as a set before, in any order, are left out). An old ring's owners
        that no longer hold data in the map (``out``, ``removed``, gone: :func:`holds`) are
        left out of its set, and a set left empty is none (see the module docstring)."""
        sets = [locate(self.current, bucket, key, n)]
        for ring in self.old():
            owners = [o for o in locate(ring, bucket, key, n) if holds(self._topology.node(o))]
            if owners and not any(set(owners) == set(s) for s in sets):
                sets.append(owners)
        return sets

    def write_began(self) -> int:
        """A manifest write is about to pick its owners; pass the token to :meth:`write_ended`."""
        epoch = self.ring_epoch
        self._writing[epoch] = self._writing.get(epoch, 0) + 1
        return epoch

    def write_ended(self, token: int) -> None:
        left = self._writing.get(token, 0) - 1
        if left > 0:
            self._writing[token] = left
        else:
            self._writing.pop(token, None)

    def older_writes_in_flight(self) -> bool:
        """Whether a manifest write of this gateway that picked its owners before the
        current ring came into effect is still running (a pass waits for it rather than have
        the nodes' fences refuse it)."""
        epoch = self.ring_epoch
        return any(token < epoch for token in self._writing)

    async def catch_up(self, epoch: int = 0, ring_epoch: int = 0) -> None:
        """Adopt a cluster map at least at ``epoch`` whose ring came into effect at least at
        ``ring_epoch`` (fetched once for all the writes waiting). Raises ServiceUnavailable
        when the metadata service does not give one."""
        for _ in range(CATCH_UP_TRIES):
            cmap = self._topology.map
            if cmap.epoch >= epoch and cmap.ring_epoch >= ring_epoch:
                return
            if self._refreshing is None or self._refreshing.done():
                self._refreshing = asyncio.ensure_future(self._topology.refresh())
            try:
                await asyncio.shield(self._refreshing)
            except (ObjstoreError, OSError, asyncio.TimeoutError) as exc:
                raise ServiceUnavailable(f"the cluster map could not be fetched: {exc}") from None
        cmap = self._topology.map
        if cmap.epoch < epoch or cmap.ring_epoch < ring_epoch:
            raise ServiceUnavailable(f"the cluster map is at epoch {cmap.epoch} (ring {cmap.ring_epoch}); "
                                     f"epoch {epoch} (ring {ring_epoch}) is needed")

    def adopt(self, cmap: ClusterMap) -> None:
        """Use ``cmap`` (the answer of a hand-over command) unless a newer map is in use."""
        if cmap.epoch > self._topology.map.epoch:
            self._topology.adopt(cmap)


def holds(node: NodeInfo | None) -> bool:
    """Whether the map still counts ``node``'s copies (and manifests): it is in the map in
    one of ``HOLDING_STATES``. Hand-over walks only such nodes of the old rings, and only
    they count among an old ring's owners."""
    return node is not None and node.state in HOLDING_STATES


def quorum_met(sets: list[list[str]], nodes: set[str], need: int) -> bool:
    """Whether ``nodes`` hold ``need`` of every owner set (a smaller set: all of it)."""
    return all(len(nodes.intersection(s)) >= min(need, len(s)) for s in sets)


def quorum_lost(sets: list[list[str]], failed: set[str], need: int) -> bool:
    """Whether ``failed`` leaves some owner set without ``need`` others."""
    return any(len(s) - len(failed.intersection(s)) < min(need, len(s)) for s in sets)


async def _store(ctx: "GatewayContext", node_id: str, manifests: list[CommitManifest], ring_epoch: int) -> bool:
    node = ctx.topology.node(node_id)
    if node is None:
        return False
    try:
        sizes = [len(json.dumps(m.to_dict())) for m in manifests]
        batch: list[CommitManifest] = []
        size = 0
        for m, n in zip(manifests, sizes):
            if batch and (size + n > BATCH_BYTES or len(batch) >= BATCH_MANIFESTS):
                await ctx.storage.put_manifests(node.address, batch, ring_epoch=ring_epoch)
                batch, size = [], 0
            batch.append(m)
            size += n
        if batch:
            await ctx.storage.put_manifests(node.address, batch, ring_epoch=ring_epoch)
        return True
    except (ObjstoreError, OSError, asyncio.TimeoutError) as exc:
        log.info("manifest hand-over to %s failed: %s", node_id, exc)
        return False


async def _hand_page(ctx: "GatewayContext", current: Ring, ring_epoch: int, source: str,
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
    results = await asyncio.gather(*(_store(ctx, n, to[n], ring_epoch) for n in targets))
    holding = {n for n, ok in zip(targets, results) if ok} | {source}
    return all(len(holding.intersection(owners)) >= need for owners, need in needs)


async def hand_over_once(ctx: "GatewayContext", epochs: RingEpochs) -> bool:
    """One hand-over pass (see the module docstring); whether the old rings were dropped.
    Raises ObjstoreError/OSError/TimeoutError when a node cannot be walked or the
    metadata service does not take the hand-over."""
    old = epochs.old()
    if not old:
        return True
    if epochs.older_writes_in_flight():
        return False  # they are bounded by the storage client's timeout: the next pass
    target, current = epochs.ring_epoch, epochs.current
    sources = sorted({n.node_id for ring in old for n in ring.nodes})
    for node_id in sources:
        node = ctx.topology.node(node_id)
        if not holds(node) or node_id in epochs.walked:
            continue  # out or removed: what only it held is gone with it; or walked already
        after, cursor = ("", ""), ""
        while True:
            page, cursor = await ctx.storage.manifest_page(node.address, after, PAGE_KEYS, cursor, fence=target)
            if epochs.ring_epoch != target:
                return False  # the ring changed again: the next pass hands over to the new one
            if not await _hand_page(ctx, current, target, node_id, page):
                return False
            if not cursor:
                break
            after = (page[-1][0], page[-1][1]) if page else after
        epochs.walked.add(node_id)
    epochs.adopt(await ctx.meta.hand_over_rings(target))
    log.info("manifests handed over to the ring of epoch %d; %d old ring(s) dropped", target, len(old))
    return True


async def hand_over_forever(ctx: "GatewayContext", epochs: RingEpochs, every: float = PASS_EVERY) -> None:
    """Run :func:`hand_over_once` every ``every`` seconds while an old ring is kept; after
    a pass that stopped on an unreachable node or failed in any other way (logged), up to
    ``MAX_PASS_WAIT`` seconds apart. Only cancellation ends it."""
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
        except Exception:  # noqa: BLE001 - a malformed answer must not end hand-over for good
            # Anything else (a KeyError or ValueError from a malformed page, a bug) is logged
            # with its traceback and the pass runs again later: if this loop ended, the old
            # rings would stay kept and, past the most kept, be dropped without hand-over.
            wait = min(2 * wait, MAX_PASS_WAIT)
            log.exception("manifest hand-over pass failed (next in %.0fs)", wait)
