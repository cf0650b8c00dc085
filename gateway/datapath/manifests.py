"""Commit manifests on a key's ring nodes: written after every commit, read by ``quorum``
and ``one`` reads without the metadata service (:mod:`objstore.manifest` has the rules).

A key's manifest replicas are its first ``manifest_replicas`` ring nodes under each ring
epoch the gateway still keeps (the current ring, and while a ring change is not yet handed
over, the old ones: :mod:`gateway.ring_epochs`), whatever their state, except that an old
ring's owners the map has ``out`` or ``removed`` are not counted (hand-over does not walk
them either): readers ask the same nodes.

Writing (:func:`publish`): after the metadata service committed a write or delete at log
index ``c`` and before the client is answered, the manifest goes to every replica; the
answer waits for ``manifest_write_quorum`` of them among each epoch's owners (the others
finish in the background). Fewer is a 503: the write committed but cannot be promised to
quorum readers, so the client must treat it as ambiguous. An owner whose store failed is
sent the manifest again in the background (:mod:`gateway.datapath.manifest_retry`); the
manifest is never handed off to other nodes (no reader asks them). Each store names the ring epoch
it was placed by. When the commit reported a newer cluster-map epoch than the gateway's,
the gateway adopts that map first; when a node refuses the store because its manifests
were handed over to a newer ring (StaleRingEpoch), the gateway adopts the newer map and
places the manifest again under its rings (at most ``PLACEMENTS`` times).

Reading at ``quorum`` (:func:`gather`): every replica is asked at once; the read goes on
as soon as R of each epoch's owners answered, taking the manifest with the highest commit
index among the answers; the other requests finish in the background. Nodes that answered
with an older one are sent the newest in the background (read repair). Each request names
the gateway's ring epoch; a node whose manifests were handed over to a newer ring refuses
it, and the gateway adopts the newer map and asks again (a gateway behind the map never
reads by a ring already handed over).

Reading at ``one`` (:func:`first`): one replica at a time (not suspected first), the next
at once when it fails or has no manifest of the key, or when it is slower than
``HEDGE_SECONDS`` (the first answer with a manifest is taken).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

from gateway.context import GatewayContext
from gateway.datapath.arrivals import Arrivals
from gateway.ring_epochs import quorum_lost, quorum_met
from objstore.errors import ObjstoreError, ServiceUnavailable, StaleRingEpoch
from objstore.manifest import CommitManifest, manifest_replicas, manifest_write_quorum, newest
from objstore.types import ObjectVersion, Policy

log = logging.getLogger(__name__)

HEDGE_SECONDS = 0.5  # a ``one`` read asks the next owner when the one asked is this slow
PLACEMENTS = 3  # a manifest write places its manifest at most this often (after refusals by a newer ring)


def owner_sets(ctx: GatewayContext, bucket: str, key: str, policy: Policy) -> list[list[str]]:
    """The node ids holding (bucket, key)'s manifests under each ring epoch still kept
    (:mod:`gateway.ring_epochs`): its first ``manifest_replicas`` ring nodes, current ring first."""
    return ctx.rings.owner_sets(bucket, key, manifest_replicas(policy))


def ring_nodes(ctx: GatewayContext, bucket: str, key: str, policy: Policy) -> list[str]:
    """Every node asked for (bucket, key)'s manifests: the owners under each kept ring, in order."""
    return list(dict.fromkeys(n for owners in owner_sets(ctx, bucket, key, policy) for n in owners))


async def _put(ctx: GatewayContext, node_id: str, manifest: CommitManifest,
               ring_epoch: int) -> tuple[str, bool | int]:
    """Store ``manifest`` on ``node_id``: (node id, True), (node id, False) when it failed,
    or (node id, the node's fence) when it refused a ring older than its fence."""
    node = ctx.topology.node(node_id)
    if node is None:
        return node_id, False
    try:
        await ctx.manifest_lanes.put(node.address, manifest, ring_epoch=ring_epoch)
        return node_id, True
    except StaleRingEpoch as exc:
        log.info("manifest of %s/%s refused by %s: %s", manifest.bucket, manifest.key, node_id, exc)
        return node_id, max(int(exc.extra.get("fence") or 0), ring_epoch + 1)
    except (ObjstoreError, OSError, asyncio.TimeoutError) as exc:
        log.info("manifest of %s/%s to %s failed: %s", manifest.bucket, manifest.key, node_id, exc)
        return node_id, False


async def _store_again(ctx: GatewayContext, node_id: str, manifest: CommitManifest, ring_epoch: int) -> bool:
    """One retry of a failed store: True when done (stored, refused by a newer ring, or no
    longer worth it: the ring it was placed by is not current, or the node left the map)."""
    if ctx.rings.ring_epoch != ring_epoch or ctx.topology.node(node_id) is None:
        return True  # a ring change hands manifests over to the new owners
    token = ctx.rings.write_began()
    try:
        _node_id, ok = await _put(ctx, node_id, manifest, token)
    finally:
        ctx.rings.write_ended(token)
    return ok is not False


async def _finish(tasks: list[asyncio.Future], then: Callable[[], None] | None = None) -> None:
    """Let ``tasks`` finish in the background (their errors are logged where they occur)."""
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if then is not None:
            then()


async def publish(ctx: GatewayContext, bucket: str, key: str, commit_index: int, version: ObjectVersion | None,
                  policy: Policy, data_quorum: int, removed: str = "", changed: ObjectVersion | None = None,
                  map_epoch: int = 0) -> int:
    """Write the manifest of a commit at ``commit_index`` (``version``: the key's current
    version after it, None for none; ``changed``: a non-current version it rewrote) to the
    key's ring nodes; returns how many stored it once the manifest write quorum did.
    ``map_epoch``: the cluster-map epoch the commit applied at (0: not known); a newer map
    than the gateway's is adopted first. Raises ServiceUnavailable below that quorum."""
    if commit_index <= 0:
        raise ServiceUnavailable("the metadata service did not report a commit index")
    ctx.newest_commit = max(ctx.newest_commit, commit_index)
    need = manifest_write_quorum(policy, data_quorum)
    manifest = CommitManifest(bucket, key, commit_index, version, removed, data_quorum, changed)
    await ctx.rings.catch_up(epoch=map_epoch)
    for _ in range(PLACEMENTS):
        stored, fence = await _place(ctx, manifest, policy, need)
        if stored >= 0:
            return stored
        await ctx.rings.catch_up(ring_epoch=fence)  # a node's manifests went to a newer ring: place by it
    raise ServiceUnavailable(f"The write committed (index {commit_index}) but the manifest replicas kept refusing "
                             "the ring it was placed by; retry.")


def _send(ctx: GatewayContext, node_id: str, manifest: CommitManifest, ring_epoch: int) -> asyncio.Future | None:
    """The future of storing ``manifest`` on ``node_id`` (queued in its node's lane: no
    task per store), or None when the node is not in the map."""
    node = ctx.topology.node(node_id)
    if node is None:
        return None
    return ctx.manifest_lanes.send(node.address, manifest, ring_epoch=ring_epoch)


def _outcome(ctx: GatewayContext, node_id: str, manifest: CommitManifest, ring_epoch: int,
             sent: asyncio.Future | None) -> bool | int:
    """What a store :func:`_send` started came to, as :func:`_put` says it (True, False, or
    the node's fence), with its log line; a failed store (not a refusal by a newer ring) is
    sent to the node again in the background (:mod:`gateway.datapath.manifest_retry`).
    Raises what the store raised beyond a node's failure."""
    if sent is None:
        return False
    exc = asyncio.CancelledError() if sent.cancelled() else sent.exception()
    if exc is None:
        return True
    if isinstance(exc, StaleRingEpoch):
        log.info("manifest of %s/%s refused by %s: %s", manifest.bucket, manifest.key, node_id, exc)
        return max(int(exc.extra.get("fence") or 0), ring_epoch + 1)
    if not isinstance(exc, (ObjstoreError, OSError, asyncio.TimeoutError)):
        raise exc
    log.info("manifest of %s/%s to %s failed: %s", manifest.bucket, manifest.key, node_id, exc)
    if ctx.topology.node(node_id) is not None:
        ctx.manifest_retries.start(lambda: _store_again(ctx, node_id, manifest, ring_epoch),
                                   f"manifest of {manifest.bucket}/{manifest.key}@{manifest.commit_index} "
                                   f"to {node_id}")
    return False


class _Rest:
    """The stores of a manifest write still running once it was answered: each one's
    outcome is taken (logged, a failure retried) when it ends, and the write's ring-epoch
    count ends with the last of them (:meth:`gateway.ring_epochs.RingEpochs.write_ended`),
    with no task waiting for them."""

    def __init__(self, ctx: GatewayContext, manifest: CommitManifest, token: int,
                 rest: dict[asyncio.Future, str]) -> None:
        self._ctx, self._manifest, self._token, self._rest = ctx, manifest, token, rest
        for sent in rest:
            sent.add_done_callback(self._ended)

    def _ended(self, sent: asyncio.Future) -> None:
        node_id = self._rest.pop(sent)
        try:
            _outcome(self._ctx, node_id, self._manifest, self._token, sent)
        except BaseException as exc:  # noqa: BLE001 - nobody waits for it: logged, as a task's would be
            log.warning("manifest of %s/%s to %s: %r", self._manifest.bucket, self._manifest.key, node_id, exc)
        finally:
            if not self._rest:
                self._ctx.rings.write_ended(self._token)


async def _place(ctx: GatewayContext, manifest: CommitManifest, policy: Policy, need: int) -> tuple[int, int]:
    """Store ``manifest`` on its owners under each kept ring until ``need`` of each set
    did: (how many stored, 0), or (-1, the newest fence a node refused it by) when a
    refusal by a newer ring left a set short. Raises ServiceUnavailable below the quorum
    otherwise."""
    token = ctx.rings.write_began()
    sets: list[list[str]] = []
    stored: set[str] = set()
    failed: set[str] = set()
    fence = 0
    pending: dict[asyncio.Future, str] = {}
    arrivals: Arrivals | None = None

    def count(node_id: str, ok: bool | int) -> None:
        nonlocal fence
        if ok is True:
            stored.add(node_id)
        else:
            failed.add(node_id)
            fence = max(fence, int(ok))

    try:
        # Owners are picked inside the try: a failure there ends the ring-epoch count too.
        sets = owner_sets(ctx, manifest.bucket, manifest.key, policy)
        for n in dict.fromkeys(n for owners in sets for n in owners):
            sent = _send(ctx, n, manifest, token)
            if sent is None:
                count(n, _outcome(ctx, n, manifest, token, None))
            else:
                pending[sent] = n
        arrivals = Arrivals(pending)
        while pending and not (quorum_met(sets, stored, need) or quorum_lost(sets, failed, need)):
            for sent in await arrivals.next():
                node_id = pending.pop(sent)
                count(node_id, _outcome(ctx, node_id, manifest, token, sent))
    finally:
        if arrivals is not None:
            arrivals.close()
        if pending:
            _Rest(ctx, manifest, token, pending)
        else:
            ctx.rings.write_ended(token)
    if quorum_met(sets, stored, need):
        return len(stored), 0
    if fence > token:
        return -1, fence
    raise ServiceUnavailable(f"The write committed (index {manifest.commit_index}) but only {len(stored)} of the "
                             f"{need} manifest replicas it needs stored its manifest; retry.")


@dataclass(frozen=True, slots=True)
class Gathered:
    """What ``need`` ring nodes said about a key: every manifest they returned, the newest,
    and how many nodes answered."""

    manifests: tuple[CommitManifest, ...]
    newest: CommitManifest | None
    answered: int


class _Unanswered(ServiceUnavailable):
    """A manifest replica that did not answer (down, refused, timed out, an error);
    ``fence``: the ring epoch it refused an older ring's read by (0: another failure)."""

    def __init__(self, node_id: str, message: str, fence: int = 0) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.fence = fence


async def _get(ctx: GatewayContext, node_id: str, bucket: str, key: str,
               ring_epoch: int = 0) -> tuple[str, list[CommitManifest]]:
    node = ctx.topology.node(node_id)
    if node is None:
        raise _Unanswered(node_id, f"{node_id} is not in the cluster map")
    try:
        return node_id, await ctx.storage.get_manifests(node.address, bucket, key, ring_epoch=ring_epoch)
    except StaleRingEpoch as exc:
        raise _Unanswered(node_id, f"{node_id}: {exc.message}", max(int(exc.extra.get("fence") or 0),
                                                                    ring_epoch + 1)) from None
    except (ObjstoreError, OSError, asyncio.TimeoutError) as exc:
        raise _Unanswered(node_id, f"{node_id}: {exc!r}") from None


async def gather(ctx: GatewayContext, bucket: str, key: str, policy: Policy, need: int) -> Gathered:
    """The manifests of (bucket, key) once ``need`` of its owners under every kept ring
    epoch answered (a node owning it under two epochs counts for both); stale answerers are
    repaired in the background. A node whose manifests were handed over to a ring newer
    than the gateway's refuses: the gateway adopts the newer map and asks again. Raises
    ServiceUnavailable when some epoch's owners cannot give ``need`` answers."""
    for _ in range(PLACEMENTS - 1):
        got, fence = await _gather_once(ctx, bucket, key, policy, need)
        if got is not None:
            return got
        await ctx.rings.catch_up(ring_epoch=fence)
    got, fence = await _gather_once(ctx, bucket, key, policy, need)
    if got is None:
        raise ServiceUnavailable(f"manifest replicas of {bucket}/{key} refuse ring epoch {ctx.rings.ring_epoch}")
    return got


async def _gather_once(ctx: GatewayContext, bucket: str, key: str, policy: Policy,
                       need: int) -> tuple[Gathered | None, int]:
    """:func:`gather` under the gateway's rings: (what was gathered, 0), or (None, the
    newest fence a node refused by)."""
    sets = owner_sets(ctx, bucket, key, policy)
    if need > len(sets[0]):
        raise ServiceUnavailable(f"{need} manifest replicas are needed; the ring has {len(sets[0])} nodes")
    epoch = ctx.rings.ring_epoch
    nodes = list(dict.fromkeys(n for owners in sets for n in owners))
    tasks = {asyncio.ensure_future(_get(ctx, n, bucket, key, epoch)): n for n in nodes}
    answers: dict[str, list[CommitManifest]] = {}
    failed: set[str] = set()
    errors: list[str] = []
    fence = 0
    try:
        for done in asyncio.as_completed(tasks):
            try:
                node_id, found = await done
            except _Unanswered as exc:
                failed.add(exc.node_id)
                errors.append(exc.message)
                fence = max(fence, exc.fence)
                if fence or quorum_lost(sets, failed, need):
                    break
                continue
            answers[node_id] = found
            if quorum_met(sets, set(answers), need):
                break
    finally:
        # The slower answers are left to finish (cancelling would close their pooled
        # connections): small requests, bounded by the storage client's timeout.
        rest = [t for t in tasks if not t.done()]
        if rest:
            ctx.background(_finish(rest))
    if fence:
        return None, fence
    if not quorum_met(sets, set(answers), need):
        raise ServiceUnavailable(f"only {len(answers)} manifest replicas answered, {need} of each ring epoch's "
                                 "owners are needed: " + "; ".join(errors))
    every = tuple(m for found in answers.values() for m in found)
    top = newest(every)
    if top is not None:
        stale = [n for n, found in answers.items() if (newest(found) or top).commit_index < top.commit_index
                 or not found]
        for node_id in stale:
            ctx.background(_put(ctx, node_id, top, epoch))
    return Gathered(every, top, len(answers)), 0


async def first(ctx: GatewayContext, bucket: str, key: str, policy: Policy, hedge: float = HEDGE_SECONDS) -> Gathered:
    """The manifests of (bucket, key) from the first owner that answers with any (a
    ``one`` read): owners are asked one at a time, the current ring's first and nodes not
    suspected before suspected ones; a failed node passes to the next at once, a slow one
    after ``hedge`` seconds (its answer is still taken if it comes first). Without any
    manifest anywhere: an empty answer. Raises ServiceUnavailable when no owner answers."""
    nodes = ring_nodes(ctx, bucket, key, policy)
    order = sorted(nodes, key=lambda n: ctx.topology.is_suspect(n))  # stable: ring order otherwise
    waiting = iter(order)
    pending: set[asyncio.Future] = set()
    answered = 0
    errors: list[str] = []

    def ask_next() -> bool:
        node_id = next(waiting, None)
        if node_id is None:
            return False
        pending.add(asyncio.ensure_future(_get(ctx, node_id, bucket, key)))
        return True

    ask_next()
    try:
        while pending:
            done, _ = await asyncio.wait(pending, timeout=hedge, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                ask_next()  # slow: ask the next one too
                continue
            for task in done:
                pending.discard(task)
                try:
                    _node_id, found = task.result()
                except _Unanswered as exc:
                    errors.append(exc.message)
                    ask_next()  # failed: the next one at once
                    continue
                answered += 1
                if found:
                    return Gathered(tuple(found), newest(found), answered)
                ask_next()  # had nothing (a new owner, or no such key): the next one
    finally:
        if pending:
            ctx.background(_finish(list(pending)))
    if not answered:
        raise ServiceUnavailable("no manifest replica answered: " + "; ".join(errors))
    return Gathered((), None, answered)
