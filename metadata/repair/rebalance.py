"""Planning rebalancing: moving copies whose recorded placement is not the ring's. Pure.

One reconciler serves repair and rebalancing: a move is a :class:`RepairTask` with
``move=True``, leased, copied (verified, by the target's repair worker) and committed
through the conditional ``RepairPlacement`` exactly like a repair. Only the placement
changes; the old copy stays on its node and is collected later by garbage collection
(:mod:`metadata.fsm.references`: a copy outside its version's placement is an orphan).

Rules:
- Only a blob at full policy is moved (every copy of its placement on a holding node, as
  many as its policy wants); a blob below policy is repair's (which also picks ring owners).
- The ring's owners of a blob are ``ring.locate(bucket, ring_key, width)`` over the
  current map (``up``, ``full``, ``down`` nodes; weights and zones as for writes); the
  ring key is the object key, or a part's blob id.
- One task per blob at a time; the target is the first owner missing from the
  placement that is writable, has not failed the blob and has room (``free_bytes``); the
  copy it replaces is a placement node that is not an owner, preferring one in the
  target's zone (so a swap never concentrates copies in a zone), then one outside the ring
  (draining). The new placement is the old one with that node swapped for the target.
- ec: the same, by node set: the retired node's shard slot goes to the target (rebuilt by
  the target from the other slots), every other slot stays where it is. Slot order is not
  the ring's order after a change (an added node shifts it); matching it would move
  nearly every shard, so only membership of the owner set counts.
- So at every step the committed placement has the policy's width of holding copies: an
  object is never below policy, and a crash anywhere leaves the old placement (commit not
  applied) or the new one (applied), both complete; a copy made but never committed is an
  unreferenced stray, collected.
- Only what must move moves: a blob whose placement is its owners gives no task.

Finding what to move (:class:`RebalanceState`, the leader's soft state):
- parts of multipart uploads in progress placed on nodes outside the ring that still hold
  copies (``draining``), from the uploads' per-node index (``UploadStore.by_node``), each
  round resuming after the last one examined (:class:`~metadata.repair.part_walk.PartWalk`),
  then parts found misplaced before and not yet fixed (bounded: ``MAX_MISPLACED``; those
  two together at most half the round's ``scan``, so parts that give no move do not stop
  the walk), then a walk over every part of every upload in progress (``walk`` parts per
  round, resuming at the part where it stopped; restarted as the key walk is): each is
  moved as a version's blob is (same rules, ring key the part's blob id; committed by a
  ``RepairPlacement`` naming the upload), so completing the upload later lists the new
  placement. So an added node or a weight change moves parts of uploads in progress too,
  as a drain does;
- keys on nodes outside the ring that still hold copies (``draining``), straight from the
  placement index (``PlacementIndex.by_node``): no scan;
- keys found misplaced before and not yet fixed (bounded: ``MAX_MISPLACED``);
- a walk over every key of every bucket, ``walk`` keys per planning round, restarted
  whenever the ring (its nodes, zones and weights) or the set of writable nodes changes,
  and once when a leader starts (its soft state is empty). Cost: each round examines
  ``walk`` keys (≈ 2–5 µs each on the apply loop's thread, in the leader's read); at the
  default of 2048 keys per 0.5 s round, 10 M keys take ≈ 40 minutes to walk, during which
  the moves found so far already run. This is what an added node or a weight change
  costs: there is no index of "keys the new node should have".
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import replace
from typing import Any, Callable, Collection, Iterator, Mapping

from metadata.api.upload_records import MultipartUpload, UploadedPart
from metadata.fsm import records
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.placement_index import survivors
from metadata.repair.part_walk import PartWalk
from metadata.repair.planner import Blob, _layout, blob_bytes, ring_of, task_id
from objstore.erasure.data_layout import DataLayout
from objstore.repair_records import RepairTask, Source
from objstore.ring import Ring
from objstore.types import HOLDING_STATES, RING_STATES, WRITABLE_STATES, ClusterMap, NodeInfo

Key = tuple[str, str]
PartKey = tuple[str, str, str, int]  # bucket, key, upload id, part number
MAX_MISPLACED = 100_000
RATE_WINDOW = 1_000
RATE_SECONDS = 60.0


def ring_signature(cmap: ClusterMap) -> tuple:
    """What placement depends on: the ring's nodes (id, zone, weight) and the writable ones."""
    ring = tuple(sorted((n.node_id, n.zone, n.weight) for n in cmap.nodes if n.state in RING_STATES))
    return ring, tuple(sorted(n.node_id for n in cmap.nodes if n.state in WRITABLE_STATES))


def move_task(ring: Ring, blob: Blob, blob_id: str, policy: str, layout: DataLayout, size: int,
              placement: tuple[str, ...], nodes: Mapping[str, NodeInfo], failed: Collection[str] = (),
              free_bytes: Mapping[str, int] | None = None) -> tuple[bool, RepairTask | None]:
    """(misplaced, the move to make now or None) for one blob at full policy; see the rules."""
    bucket, key, vid, part = blob
    _, width, _ = survivors(policy, placement, lambda n: True)
    ring_key = blob_id if part else key
    owners = ring.locate(bucket, ring_key, width)
    free_bytes = free_bytes or {}
    need = blob_bytes(layout, size)

    def ok_target(n: str) -> bool:
        node = nodes.get(n)
        return (node is not None and node.state in WRITABLE_STATES and n not in failed
                and free_bytes.get(n, need) >= need)

    if len(owners) < width:
        return False, None  # the ring is too small for the policy: nothing is misplaced
    if layout.erasure_coded:
        placement = tuple(placement[:width])
    misplaced = [n for n in placement if n not in owners]
    if not misplaced:
        return False, None
    target = next((o for o in owners if o not in placement and ok_target(o)), None)
    if target is None:
        return True, None
    zone = nodes[target].zone

    def preference(n: str) -> tuple[int, int]:
        node = nodes.get(n)
        return (0 if node is not None and node.zone == zone else 1,
                0 if node is None or node.state not in RING_STATES else 1)

    retire = min(misplaced, key=preference)
    new = tuple(target if n == retire else n for n in placement)
    if layout.erasure_coded:  # the retired node's shard slot, rebuilt from the other slots
        shard = placement.index(retire)
        sources = tuple(Source(n, nodes[n].address, i) for i, n in enumerate(placement) if n in nodes and i != shard)
        return True, _task(blob, blob_id, policy, size, shard, target, placement, new, sources)
    sources = tuple(Source(n, nodes[n].address, 0) for n in [retire] + [n for n in placement if n != retire]
                    if n in nodes)
    return True, _task(blob, blob_id, policy, size, 0, target, placement, new, sources)


def _task(blob: Blob, blob_id: str, policy: str, size: int, shard: int, target: str, expected: tuple[str, ...],
          new: tuple[str, ...], sources: tuple[Source, ...]) -> RepairTask:
    bucket, key, vid, part = blob
    return RepairTask(task_id(blob, shard, target), bucket, key, vid, part, policy, size, shard, target,
                      tuple(expected), new, sources, blob_id if blob_id != vid else "", 0, move=True)


def examine(fsm: MetadataFSM, ring: Ring, bucket: str, key: str, *, busy: Collection[Blob] = frozenset(),
            failed: Mapping[Blob, Collection[str]] | None = None, free_bytes: Mapping[str, int] | None = None,
            limit: int = 1 << 30) -> tuple[int, list[RepairTask]]:
    """(bytes misplaced, moves) of one key's blobs at full policy (busy blobs count as
    misplaced, and give no task)."""
    index = fsm.objects.get(bucket)
    if index is None:
        return 0, []
    failed = failed or {}
    misplaced_bytes = 0
    tasks: list[RepairTask] = []
    for rec in index.versions(key):
        policy, blobs = records.blob_placements(rec, fsm.atoms)
        layout = _layout(policy)
        if layout is None:
            continue
        for part, size, placement, blob_id in blobs:
            alive, width, _ = survivors(policy, placement, fsm.placements.holding)
            if alive < width or "" in placement[:width]:
                continue  # below policy: repair's
            blob = (bucket, key, records.version_id_of(rec), part)
            if blob in busy:
                misplaced_bytes += blob_bytes(layout, size)
                continue
            wrong, task = move_task(ring, blob, blob_id, policy, layout, size, placement, fsm.nodes,
                                    failed.get(blob, ()), free_bytes)
            if wrong:
                misplaced_bytes += blob_bytes(layout, size)
            if task is not None and len(tasks) < limit:
                tasks.append(task)
    return misplaced_bytes, tasks


def draining_nodes(fsm: MetadataFSM) -> list[str]:
    """Nodes outside the ring whose copies still count (draining)."""
    return [n.node_id for n in fsm.nodes.values() if n.state in HOLDING_STATES and n.state not in RING_STATES]


def part_move(fsm: MetadataFSM, ring: Ring, info: MultipartUpload, up: UploadedPart, *,
              busy: Collection[Blob] = frozenset(), failed: Mapping[Blob, Collection[str]] | None = None,
              free_bytes: Mapping[str, int] | None = None) -> tuple[int, RepairTask | None]:
    """(bytes misplaced, the move to make now or None) of one part of an upload in
    progress at full policy, as :func:`examine` for a key's blobs (a busy part counts as
    misplaced and gives no task; a part below policy is repair's)."""
    part = up.part
    blob = (info.bucket, info.key, part.version_id, part.number)
    layout = _layout(info.policy)
    if layout is None:
        return 0, None
    alive, width, _ = survivors(info.policy, part.placement, fsm.placements.holding)
    if alive < width or "" in part.placement[:width]:
        return 0, None
    if blob in busy:
        return blob_bytes(layout, part.size), None
    wrong, task = move_task(ring, blob, part.version_id, info.policy, layout, part.size, part.placement,
                            fsm.nodes, (failed or {}).get(blob, ()), free_bytes)
    return (blob_bytes(layout, part.size) if wrong else 0), (replace(task, upload_id=info.upload_id) if task else None)


def _remember(table: "OrderedDict[Any, int]", item: Any, misplaced_bytes: int) -> None:
    """Note ``item``'s misplaced bytes in ``table`` (newest last, at most MAX_MISPLACED
    kept, the oldest dropped); 0 forgets it."""
    table.pop(item, None)
    if misplaced_bytes:
        table[item] = misplaced_bytes
        while len(table) > MAX_MISPLACED:
            table.popitem(last=False)


class RebalanceState:
    """The leader's rebalancing soft state: the walk's cursor, the keys known misplaced,
    progress figures. Bounded; a new leader starts empty and walks again."""

    def __init__(self, walk: int = 2048, clock: Callable[[], float] = time.monotonic) -> None:
        self.walk = walk
        self.clock = clock
        self.signature: tuple | None = None
        self.cursor: tuple[str, str] | None = ("", "")  # (bucket, next key); None: walk done
        self.walked = 0  # keys walked since the walk started
        self.walks = 0  # walks completed
        self.misplaced: OrderedDict[Key, int] = OrderedDict()  # key -> bytes misplaced
        self.part_cursor: tuple[str, str, str, int] | None = ("", "", "", 0)  # next part of the part walk; None: done
        self.draining_walk = PartWalk()  # where the last round stopped among draining nodes' parts
        self.misplaced_parts: OrderedDict[PartKey, int] = OrderedDict()  # part of an upload -> bytes misplaced
        self.moved_objects = 0
        self.moved_bytes = 0
        self._moves: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)

    def ring_changed(self, cmap: ClusterMap) -> bool:
        """Restart the walk when the ring or the writable nodes changed (or never seen)."""
        sig = ring_signature(cmap)
        if sig == self.signature:
            return False
        self.signature = sig
        self.cursor = ("", "")
        self.part_cursor = ("", "", "", 0)
        self.walked = 0
        return True

    def _walk(self, fsm: MetadataFSM) -> Iterator[Key]:
        """The next keys of the walk, advancing the cursor (``walk`` at most per round)."""
        if self.cursor is None:
            return
        first, start = self.cursor
        taken = 0
        for name in sorted(b for b in fsm.objects if b >= first):
            for k, _ in fsm.objects[name].versions_from(start if name == first else ""):
                if taken >= self.walk:
                    return
                self.cursor = (name, k)  # a consumer that stops here sees this key again
                yield name, k
                self.cursor = (name, k + "\0")  # the next key after this one
                taken += 1
                self.walked += 1
        self.cursor = None
        self.walks += 1

    def _walk_parts(self, fsm: MetadataFSM) -> Iterator[tuple[MultipartUpload, UploadedPart]]:
        """The next parts of uploads in progress of the part walk, advancing its cursor
        (``walk`` parts at most per round; an upload with more parts than a round examines
        is resumed at the part where it stopped)."""
        if self.part_cursor is None:
            return
        first, key, upload_id, number = self.part_cursor
        taken = 0
        for name in sorted(b for b in fsm.uploads.buckets if b >= first):
            uploads = fsm.uploads.buckets[name]
            for k in list(uploads.irange(minimum=(key, upload_id) if name == first else None)):
                up = uploads.get(k)
                start = number if (name, *k) == (first, key, upload_id) else 0
                for n in sorted(up.parts) if up is not None else ():
                    if n < start:
                        continue
                    if taken >= self.walk:
                        return
                    self.part_cursor = (name, k[0], k[1], n)  # a consumer that stops here sees this part again
                    taken += 1
                    yield up.info, up.parts[n]
                    self.part_cursor = (name, k[0], k[1], n + 1)
                self.part_cursor = (name, k[0], k[1] + "\0", 0)  # the next upload after this one
        self.part_cursor = None

    def part_candidates(self, fsm: MetadataFSM,
                        ahead: int | None = None) -> Iterator[tuple[MultipartUpload, UploadedPart]]:
        """Parts on nodes outside the ring (from where the last round stopped), parts known
        misplaced, at most ``ahead`` of those two, then the part walk's next."""
        given = 0
        for item in self._known_parts(fsm):
            if ahead is not None and given >= ahead:
                break  # (asking for this one told the draining walk the one before was examined)
            given += 1
            yield item
        yield from self._walk_parts(fsm)

    def _known_parts(self, fsm: MetadataFSM) -> Iterator[tuple[MultipartUpload, UploadedPart]]:
        yield from self.draining_walk.parts(fsm.uploads, draining_nodes(fsm))
        for bucket, key, upload_id, number in list(self.misplaced_parts):
            up = fsm.uploads.buckets.get(bucket, {}).get((key, upload_id))
            if up is None or number not in up.parts:
                self.misplaced_parts.pop((bucket, key, upload_id, number), None)  # completed or aborted
                continue
            yield up.info, up.parts[number]

    def note_part(self, part: PartKey, misplaced_bytes: int) -> None:
        _remember(self.misplaced_parts, part, misplaced_bytes)

    def note(self, key: Key, misplaced_bytes: int) -> None:
        _remember(self.misplaced, key, misplaced_bytes)

    def candidates(self, fsm: MetadataFSM, skip: Collection[Key]) -> Iterator[Key]:
        """Keys on nodes outside the ring, keys known misplaced, then the walk's next keys."""
        for node in fsm.nodes.values():
            if node.state in HOLDING_STATES and node.state not in RING_STATES:
                for k in list(fsm.placements.keys_on(node.node_id)):
                    if k not in skip:
                        yield k
        yield from [k for k in self.misplaced if k not in skip]
        yield from self._walk(fsm)

    def plan(self, fsm: MetadataFSM, *, busy: Collection[Blob] = frozenset(),
             failed: Mapping[Blob, Collection[str]] | None = None, free_bytes: Mapping[str, int] | None = None,
             skip: Collection[Key] = frozenset(), limit: int = 256, scan: int = 4096) -> tuple[list[RepairTask], list[Key]]:
        """Up to ``limit`` moves, and the keys that are misplaced but gave none (no target
        with room, or a swap waiting): the caller passes those over for a while."""
        self.ring_changed(fsm.cluster_map())
        ring = ring_of(fsm.cluster_map())
        tasks: list[RepairTask] = []
        idle: list[Key] = []
        seen: set[Key] = set()
        busy_keys = {b[:2] for b in busy}
        parts_seen: set[PartKey] = set()
        for info, up in self.part_candidates(fsm, ahead=scan // 2):
            pk = (info.bucket, info.key, info.upload_id, up.part.number)
            if pk in parts_seen:
                continue
            if len(parts_seen) >= scan or len(tasks) >= limit:
                break
            parts_seen.add(pk)
            wrong, task = part_move(fsm, ring, info, up, busy=busy, failed=failed, free_bytes=free_bytes)
            self.note_part(pk, wrong)
            if task is not None:
                tasks.append(task)
        for k in self.candidates(fsm, skip):
            if k in seen:
                continue
            if len(seen) >= scan or len(tasks) >= limit:
                break
            seen.add(k)
            wrong, found = examine(fsm, ring, k[0], k[1], busy=busy, failed=failed, free_bytes=free_bytes,
                                   limit=limit - len(tasks))
            self.note(k, wrong)
            tasks.extend(found)
            if wrong and not found and k not in busy_keys:
                idle.append(k)
        return tasks, idle

    def moved(self, task: RepairTask, now: float) -> None:
        """A move was committed: count it, and lower its key's misplaced bytes."""
        self.moved_objects += 1
        self.moved_bytes += task.size
        self._moves.append((now, task.size))
        if task.upload_id:
            self.misplaced_parts.pop((task.bucket, task.key, task.upload_id, task.part), None)
            return
        k = (task.bucket, task.key)
        if k in self.misplaced:
            left = self.misplaced[k] - task.size
            if left > 0:
                self.misplaced[k] = left
            else:
                del self.misplaced[k]

    def misplaced_bytes(self) -> int:
        """Bytes known misplaced: of keys and of parts of uploads in progress."""
        return sum(self.misplaced.values()) + sum(self.misplaced_parts.values())

    def rate(self, now: float) -> float:
        recent = [(t, n) for t, n in self._moves if t >= now - RATE_SECONDS]
        if not recent:
            return 0.0
        return sum(n for _, n in recent) / max(now - recent[0][0], 1.0)

    def status(self, fsm_keys: int, draining_keys: int, now: float, draining_parts: int = 0) -> dict[str, Any]:
        left = self.misplaced_bytes()
        rate = self.rate(now)
        objects = max(len(self.misplaced), draining_keys)
        parts = max(len(self.misplaced_parts), draining_parts)
        return {
            "objects_misplaced": objects, "bytes_misplaced": left, "upload_parts_misplaced": parts,
            "moved_objects": self.moved_objects, "moved_bytes": self.moved_bytes,
            "rate_bytes_per_second": rate, "eta_seconds": left / rate if rate > 0 and left else (0 if not left else None),
            "walk": {"done": self.cursor is None, "keys_walked": self.walked, "keys_total": fsm_keys,
                     "walks_completed": self.walks},
            "balanced": self.cursor is None and self.part_cursor is None and objects == 0 and parts == 0,
        }


def draining_keys(fsm: MetadataFSM) -> int:
    """Keys with a copy on a holding node outside the ring (draining), from the placement index."""
    return sum(len(keys) for n in draining_nodes(fsm) for keys in fsm.placements.by_node.get(n, {}).values())


def draining_parts(fsm: MetadataFSM) -> int:
    """Parts of uploads in progress placed on a holding node outside the ring (draining)."""
    return sum(fsm.uploads.part_count_on(n) for n in draining_nodes(fsm))
