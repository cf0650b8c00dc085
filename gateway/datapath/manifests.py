"""Commit manifests on a key's ring nodes: written after every commit, read by ``quorum``
and ``one`` reads without the metadata service (:mod:`objstore.manifest` has the rules).

Writing (:func:`publish`): after the metadata service committed a write or delete at log
index ``c`` and before the client is answered, the manifest goes to every one of the
key's ``manifest_replicas`` ring nodes (the ring's choice for the current map, whatever
their state: readers ask the same nodes); the answer waits for ``manifest_write_quorum``
of them (the others finish in the background). Fewer is a 503: the write committed but
cannot be promised to quorum readers, so the client must treat it as ambiguous.

Reading (:func:`gather`): every ring node is asked at once; the read goes on as soon as
``need`` of them answered (R for ``quorum``, 1 for ``one``), taking the manifest with the
highest commit index among the answers; the other requests finish in the background. Nodes that answered with an older one are sent the
newest in the background (read repair).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.context import GatewayContext
from objstore.errors import ObjstoreError, ServiceUnavailable
from objstore.manifest import CommitManifest, manifest_replicas, manifest_write_quorum, newest
from objstore.types import ObjectVersion, Policy

log = logging.getLogger(__name__)


def ring_nodes(ctx: GatewayContext, bucket: str, key: str, policy: Policy) -> list[str]:
    """The node ids holding (bucket, key)'s manifests: its first ``manifest_replicas`` ring nodes."""
    return list(ctx.topology.ring.locate(bucket, key, manifest_replicas(policy)))


async def _put(ctx: GatewayContext, node_id: str, manifest: CommitManifest) -> bool:
    node = ctx.topology.node(node_id)
    if node is None:
        return False
    try:
        await ctx.storage.put_manifest(node.address, manifest)
        return True
    except (ObjstoreError, OSError, asyncio.TimeoutError) as exc:
        log.info("manifest of %s/%s to %s failed: %s", manifest.bucket, manifest.key, node_id, exc)
        return False


async def _finish(tasks: list[asyncio.Future]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


async def publish(ctx: GatewayContext, bucket: str, key: str, commit_index: int, version: ObjectVersion | None,
                  policy: Policy, data_quorum: int, removed: str = "") -> int:
    """Write the manifest of a commit at ``commit_index`` (``version``: the key's current
    version after it, None for none) to the key's ring nodes; returns how many stored it
    once the manifest write quorum did. Raises ServiceUnavailable below that quorum."""
    if commit_index <= 0:
        raise ServiceUnavailable("the metadata service did not report a commit index")
    ctx.newest_commit = max(ctx.newest_commit, commit_index)
    need = manifest_write_quorum(policy, data_quorum)
    manifest = CommitManifest(bucket, key, commit_index, version, removed, data_quorum)
    nodes = ring_nodes(ctx, bucket, key, policy)
    tasks = [asyncio.ensure_future(_put(ctx, n, manifest)) for n in nodes]
    stored = failed = 0
    for done in asyncio.as_completed(tasks):
        if await done:
            stored += 1
        else:
            failed += 1
        if stored >= need or failed > len(nodes) - need:
            break
    rest = [t for t in tasks if not t.done()]
    if rest:
        ctx.background(_finish(rest))
    if stored < need:
        raise ServiceUnavailable(f"The write committed (index {commit_index}) but only {stored} of the "
                                 f"{need} manifest replicas it needs stored its manifest; retry.")
    return stored


@dataclass(frozen=True, slots=True)
class Gathered:
    """What ``need`` ring nodes said about a key: every manifest they returned, the newest,
    and how many nodes answered."""

    manifests: tuple[CommitManifest, ...]
    newest: CommitManifest | None
    answered: int


async def _get(ctx: GatewayContext, node_id: str, bucket: str, key: str) -> tuple[str, list[CommitManifest]]:
    node = ctx.topology.node(node_id)
    if node is None:
        raise ServiceUnavailable(f"{node_id} is not in the cluster map")
    try:
        return node_id, await ctx.storage.get_manifests(node.address, bucket, key)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ServiceUnavailable(f"{node_id}: {exc!r}") from None


async def gather(ctx: GatewayContext, bucket: str, key: str, policy: Policy, need: int) -> Gathered:
    """The manifests of (bucket, key) from the first ``need`` of its ring nodes to answer;
    stale answerers are repaired in the background. Raises ServiceUnavailable when fewer
    than ``need`` nodes answer."""
    nodes = ring_nodes(ctx, bucket, key, policy)
    if need > len(nodes):
        raise ServiceUnavailable(f"{need} manifest replicas are needed; the ring has {len(nodes)} nodes")
    tasks = [asyncio.ensure_future(_get(ctx, n, bucket, key)) for n in nodes]
    answers: dict[str, list[CommitManifest]] = {}
    errors: list[str] = []
    try:
        for done in asyncio.as_completed(tasks):
            try:
                node_id, found = await done
            except ObjstoreError as exc:
                errors.append(exc.message)
                if len(errors) > len(nodes) - need:
                    break
                continue
            answers[node_id] = found
            if len(answers) >= need:
                break
    finally:
        # The slower answers are left to finish (cancelling would close their pooled
        # connections): small requests, bounded by the storage client's timeout.
        rest = [t for t in tasks if not t.done()]
        if rest:
            ctx.background(_finish(rest))
    if len(answers) < need:
        raise ServiceUnavailable(f"only {len(answers)} of the {need} manifest replicas needed answered: "
                                 + "; ".join(errors))
    every = tuple(m for found in answers.values() for m in found)
    top = newest(every)
    if top is not None:
        stale = [n for n, found in answers.items() if (newest(found) or top).commit_index < top.commit_index
                 or not found]
        for node_id in stale:
            ctx.background(_put(ctx, node_id, top))
    return Gathered(every, top, len(answers))
