"""Membership decisions: which operator changes to the cluster map are allowed, and whether
stopping a node now is safe. Pure reads of :class:`metadata.fsm.machine.MetadataFSM`.

Operations (each becomes one Raft command, guarded by the state it was checked in):
- ``add``: a ``joining`` (or ``draining``, ``out``, ``removed``) node becomes ``up``;
- ``drain``: an ``up``/``full``/``down`` node becomes ``draining`` (outside the ring: the
  rebalancer moves its copies away while it keeps serving reads; its copies still count);
- ``remove``: a node becomes ``removed`` (its copies no longer count); refused while the
  placement index still places a copy on it, or a part of a multipart upload in progress
  is placed on it, unless ``force`` (then it counts as losing the node, and repair
  restores redundancy);
- ``set-weight``: its share of the ring.

The space guard: ``drain`` is refused when the node's used bytes, plus what every other
draining node still has to move (the bytes of the copies still placed on it, objects'
blobs from ``PlacementIndex.bytes_on`` and parts of uploads in progress: what has moved
already landed, and the up nodes' next heartbeats show it), exceed the free space the
other ``up`` nodes report in their heartbeats (above their reserve). The leader
checks and proposes one change at a time (:mod:`metadata.membership_http`), and the
``up``-node guard is also the command's own condition (``SetNodeState.min_writable``,
decided on apply), so two drains asked at once cannot both pass a guard the pair breaks.

The capacity guard: ``drain`` and ``remove`` refuse to leave fewer **``up`` nodes** (the
nodes that take new blobs; full, down and draining ones do not count) than the widest
policy of any bucket needs: N for ``replica:N``, K+M for ``ec:K+M``.

``ok-to-stop``: stopping node N is safe when no blob placed on N would be left with fewer
*available* copies than its write quorum W (the bucket's, else the policy's default):
neither a blob of an object nor a part of a multipart upload in progress. A
copy is available on a node in state ``up`` or ``full`` or ``draining`` that the leader
does not know to be unreachable (``unavailable``); copies on ``down``, ``out`` and
``removed`` nodes are not. Only the keys the placement index lists for N
(``PlacementIndex.by_node``) and the parts the uploads' per-node index lists for N
(``UploadStore.by_node``) are examined, never the whole index.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterator, Mapping

from metadata.fsm import records
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.placement_index import copy_bytes
from objstore.errors import InvalidArgument, InvalidRequest
from objstore.types import WRITABLE_STATES, Policy

OPERATIONS = ("add", "drain", "remove")
TARGET_STATE = {"add": "up", "drain": "draining", "remove": "removed"}
FROM_STATES = {
    "add": ("joining", "draining", "out", "removed"),
    "drain": ("up", "full", "down"),
    "remove": ("up", "full", "down", "out", "joining", "draining"),
}
AVAILABLE_STATES = ("up", "full", "draining")
SAMPLE = 10  # keys named in an ok-to-stop answer


def _policy(text: str) -> Policy | None:
    try:
        return Policy.parse(text.split(";", 1)[0])
    except InvalidArgument:
        return None


def widest_policy(fsm: MetadataFSM, default: str = "") -> tuple[int, str]:
    """(nodes needed, policy) of the widest policy of any bucket (``default`` too, if given)."""
    best = (0, "")
    for text in [b.policy for b in fsm.buckets.values()] + ([default] if default else []):
        p = _policy(text)
        if p is not None and p.n > best[0]:
            best = (p.n, text)
    return best


def up_nodes(fsm: MetadataFSM) -> set[str]:
    return {n.node_id for n in fsm.nodes.values() if n.state in WRITABLE_STATES}


def draining_with_data(fsm: MetadataFSM) -> list[str]:
    """Draining nodes that still hold a copy or a part of an upload in progress."""
    return [n.node_id for n in fsm.nodes.values() if n.state == "draining"
            and (fsm.placements.by_node.get(n.node_id) or fsm.uploads.part_count_on(n.node_id))]


def left_to_move(fsm: MetadataFSM, node_id: str) -> int:
    """Bytes of the copies still placed on ``node_id``: objects' blobs and parts of uploads
    in progress (what draining it has yet to move)."""
    parts = sum(b for info, up in fsm.uploads.parts_on(node_id)
                for n, b in copy_bytes(info.policy, up.part.size, up.part.placement) if n == node_id)
    return fsm.placements.bytes_placed_on(node_id) + parts


def min_writable(fsm: MetadataFSM, op: str, default_policy: str = "") -> int:
    """The writable nodes ``op`` must leave (``SetNodeState.min_writable``): the widest
    policy's width for drain and remove, else 0 (no condition)."""
    return widest_policy(fsm, default_policy)[0] if op in ("drain", "remove") else 0


def check_change(fsm: MetadataFSM, node_id: str, op: str, force: bool = False, default_policy: str = "",
                 used_bytes: Mapping[str, int] | None = None, free_bytes: Mapping[str, int] | None = None) -> str:
    """The state ``node_id`` must be in for ``op`` to apply (the command's ``if_state``).
    Raises InvalidArgument for an unknown node or operation, InvalidRequest when a guard
    refuses (the message says why, with the numbers counted). ``used_bytes``/``free_bytes``
    (from heartbeats; unknown nodes left out): a drain is refused when the node's used
    bytes exceed the free space (above reserve) the other ``up`` nodes report."""
    if op not in OPERATIONS:
        raise InvalidArgument(f"unknown node operation {op!r}; expected one of {', '.join(OPERATIONS)}")
    node = fsm.nodes.get(node_id)
    if node is None:
        raise InvalidArgument(f"no storage node {node_id!r}")
    if node.state not in FROM_STATES[op]:
        raise InvalidRequest(f"node {node_id} is {node.state}: cannot {op} it "
                             f"(only from {', '.join(FROM_STATES[op])})")
    if op in ("drain", "remove"):
        need, policy = widest_policy(fsm, default_policy)
        left = len(up_nodes(fsm) - {node_id})
        if left < need:
            raise InvalidRequest(f"refusing to {op} {node_id}: it would leave {left} up node(s), and policy "
                                 f"{policy} needs {need}")
    if op == "drain" and used_bytes and node_id in used_bytes and free_bytes is not None:
        room = sum(free_bytes.get(n, 0) for n in up_nodes(fsm) - {node_id})
        pending = sum(left_to_move(fsm, n) for n in draining_with_data(fsm) if n != node_id)
        if used_bytes[node_id] + pending > room:
            also = f" (and {pending} bytes of nodes still draining)" if pending else ""
            raise InvalidRequest(f"refusing to drain {node_id}: it holds {used_bytes[node_id]} bytes{also}, the "
                                 f"other up nodes have {room} bytes free")
    if op == "remove" and not force:
        keys = sum(len(k) for k in fsm.placements.by_node.get(node_id, {}).values())
        parts = fsm.uploads.part_count_on(node_id)
        if keys or parts:
            raise InvalidRequest(f"node {node_id} still holds copies of {keys} key(s) and {parts} part(s) of "
                                 f"multipart uploads in progress: drain it first, or --force (counts as losing "
                                 f"the node; repair restores redundancy)")
    return node.state


@dataclass(frozen=True, slots=True)
class StopCheck:
    """The answer of ``ok-to-stop``: ``blobs`` below their write quorum if ``node`` stopped,
    over ``keys_checked`` keys placed on it; ``sample`` names a few (bucket/key). The same
    for parts of multipart uploads in progress: ``parts`` below their write quorum (of
    ``uploads`` uploads) over ``parts_checked`` parts placed on it; ``upload_sample`` names
    a few (bucket/key upload id)."""

    node: str
    ok: bool
    blobs: int
    keys: int
    keys_checked: int
    sample: tuple[str, ...]
    parts: int = 0
    uploads: int = 0
    parts_checked: int = 0
    upload_sample: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"node": self.node, "ok": self.ok, "blobs_below_write_quorum": self.blobs,
                "keys_below_write_quorum": self.keys, "keys_checked": self.keys_checked,
                "sample": list(self.sample), "upload_parts_below_write_quorum": self.parts,
                "uploads_below_write_quorum": self.uploads, "upload_parts_checked": self.parts_checked,
                "upload_sample": list(self.upload_sample)}


def _write_quorum(fsm: MetadataFSM, bucket: str, p: Policy) -> int:
    b = fsm.buckets.get(bucket)
    return min(b.write_quorum if b is not None and b.write_quorum else p.default_write_quorum(), p.n)


def _blobs_on(fsm: MetadataFSM, node_id: str) -> Iterator[tuple[str, str, int, int, tuple[str, ...]]]:
    """(bucket, key, write quorum, policy width, placement) of each blob placed on ``node_id``."""
    for bucket, keys in fsm.placements.by_node.get(node_id, {}).items():
        index = fsm.objects.get(bucket)
        if index is None:
            continue
        for key in keys:
            for rec in index.versions(key):
                policy_text, blobs = records.blob_placements(rec, fsm.atoms)
                p = _policy(policy_text)
                if p is None:
                    continue
                w = _write_quorum(fsm, bucket, p)
                for _, _, placement, _ in blobs:
                    if node_id in placement:
                        yield bucket, key, w, p.n, placement


def ok_to_stop(fsm: MetadataFSM, node_id: str, unavailable: Collection[str] = ()) -> StopCheck:
    """Would stopping ``node_id`` leave any blob with fewer available copies than its write
    quorum? ``unavailable``: nodes the caller knows to be unreachable whatever the map says."""
    if node_id not in fsm.nodes:
        raise InvalidArgument(f"no storage node {node_id!r}")
    avail = {n.node_id for n in fsm.nodes.values()
             if n.state in AVAILABLE_STATES and n.node_id not in unavailable and n.node_id != node_id}
    blobs = 0
    keys: dict[str, None] = {}
    checked: set[tuple[str, str]] = set()
    for bucket, key, w, _width, placement in _blobs_on(fsm, node_id):
        checked.add((bucket, key))
        if len({n for n in placement if n in avail}) < w:
            blobs += 1
            keys[f"{bucket}/{key}"] = None
    parts = parts_checked = 0
    uploads: dict[str, None] = {}
    for info, up in fsm.uploads.parts_on(node_id):
        p = _policy(info.policy)
        if p is None:
            continue
        parts_checked += 1
        if len({n for n in up.part.placement if n in avail}) < _write_quorum(fsm, info.bucket, p):
            parts += 1
            uploads[f"{info.bucket}/{info.key} {info.upload_id}"] = None
    return StopCheck(node_id, blobs == 0 and parts == 0, blobs, len(keys), len(checked), tuple(list(keys)[:SAMPLE]),
                     parts, len(uploads), parts_checked, tuple(list(uploads)[:SAMPLE]))
