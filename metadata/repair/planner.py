"""Planning repair: which copies to re-create, from where, on which node. Pure.

Reads the state machine (its records and its placement index) and the leader's soft state
(copies verified damaged, blobs already being repaired, targets that failed, free space),
never changes anything, and returns :class:`RepairTask` values.

Rules:
- Candidates are the keys reported damaged, then the keys below policy, fewest spare
  copies first (``PlacementIndex.below_keys``); tasks come out ordered by spare copies,
  fewest first. At most ``scan`` keys are examined per call.
- A blob gets at most one task at a time, re-creating one missing copy: a replica (shard
  0, appended to the surviving copies in the new placement) or the first missing shard slot
  of an ``ec`` blob. A copy counts as surviving when its node is in ``HOLDING_STATES`` and
  it is not verified damaged; copies on other nodes are left out of the new placement
  (they are lost; a node back after ``out`` holds stale copies that nothing references).
- A blob with fewer survivors than it needs to be read (replica: 1, ec: K) is skipped:
  nothing can rebuild it; so is one whose policy string does not parse.
- A copy verified damaged on a node that is still writable is rewritten there (same
  shard slot): the node's quarantine then counts it repaired, and the placement keeps its
  ring order. Otherwise (or when that node failed the blob before, or lacks room)
- the target is the first node in the object's ring order (the ring of the current map,
  walked past its placement nodes: ``locate`` then ``locate_extra``) that is in
  ``WRITABLE_STATES``, holds no copy of that blob, did not fail that blob before, and has
  room for it when ``free_bytes`` knows its free space (less the copies this round
  already sends it).
- The ring key is the object key, or for a part of a multipart object its blob id, as
  the gateway placed it.
- Parts of multipart uploads in progress live in their upload's record, not in the
  object index: after the objects' candidates, the parts with a copy on a node that no
  longer holds copies (``out``, ``removed``) are found through the uploads' per-node index
  (``UploadStore.by_node``, no scan; at most ``scan`` parts examined, each round resuming
  after the last part the previous one examined: :class:`~metadata.repair.part_walk.PartWalk`,
  so parts that give no task do not hide the others) and repaired the same way (ring key the
  part's blob id); the task names the upload (``upload_id``), so its
  ``RepairPlacement`` changes the part's placement in the upload, and completing the
  upload later lists the repaired placement.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Collection, Iterable, Mapping

from objstore.repair_records import RepairTask, Source
from metadata.fsm import records
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.placement_index import survivors
from metadata.repair.part_walk import PartWalk
from objstore.erasure.data_layout import DataLayout
from objstore.errors import InvalidArgument
from objstore.ring import Ring
from objstore.types import WRITABLE_STATES, ClusterMap

# The ring of the last cluster map planned against. A ring costs ~2 ms to build (768
# vnode hashes and a sort for six nodes) and the map changes only when a node is added or
# changes state, weight, zone or address, while planning runs twice a second on the leader
# (repair, then rebalancing): one entry, compared by value, is all it needs.
_last_ring: list[Ring] = []


def ring_of(cmap: ClusterMap) -> Ring:
    """The ring of ``cmap`` (default build parameters), built once per distinct map."""
    if _last_ring:
        ring = _last_ring[0]
        if ring.cluster_map is cmap or ring.cluster_map == cmap:
            return ring
    ring = Ring(cmap)
    _last_ring[:] = [ring]
    return ring

Blob = tuple[str, str, str, int]  # bucket, key, version id, part


def task_id(blob: Blob, shard: int, target: str) -> str:
    return "\x1f".join((blob[0], blob[1], blob[2], str(blob[3]), str(shard), target))


def _layout(policy: str) -> DataLayout | None:
    try:
        return DataLayout.parse(policy)
    except InvalidArgument:
        return None


def blob_bytes(layout: DataLayout, size: int) -> int:
    """Bytes one copy of a blob of ``size`` object bytes takes: the whole, or one shard."""
    return layout.stripes.shard_file_size(size) if layout.erasure_coded else size


def plan(fsm: MetadataFSM, **kw: Any) -> list[RepairTask]:
    """Up to ``limit`` tasks (see :func:`plan_round` for the arguments)."""
    return plan_round(fsm, **kw)[0]


def plan_round(
    fsm: MetadataFSM,
    *,
    reported: Iterable[tuple[str, str]] = (),
    damaged: Mapping[Blob, Collection[str]] | None = None,
    busy: Collection[Blob] = frozenset(),
    failed: Mapping[Blob, Collection[str]] | None = None,
    free_bytes: Mapping[str, int] | None = None,
    skip: Collection[tuple[str, str]] = frozenset(),
    limit: int = 256,
    scan: int = 4096,
    part_walk: PartWalk | None = None,
) -> tuple[list[RepairTask], list[tuple[str, str]]]:
    """Up to ``limit`` tasks, and the keys examined that gave none although not busy (no
    target, nothing readable left): the caller may pass those over (``skip``, not counted
    against ``scan``) for a while, so they do not hide the keys behind them. Parts of
    uploads in progress are walked by ``part_walk`` (kept between rounds so each resumes
    where the last stopped; without it, from the first)."""
    damaged = damaged or {}
    failed = failed or {}
    free_bytes = dict(free_bytes or {})  # less what this round's tasks will write to each target
    cmap = fsm.cluster_map()
    ring = ring_of(cmap)
    writable = {n.node_id for n in cmap.nodes if n.state in WRITABLE_STATES}
    address = {n.node_id: n.address for n in cmap.nodes}
    tasks: list[RepairTask] = []
    idle: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    examined = 0

    def candidates() -> Iterable[tuple[str, str]]:
        yield from reported
        yield from fsm.placements.below_keys()

    for bucket, key in candidates():
        if len(tasks) >= limit or examined >= scan:
            break
        if (bucket, key) in seen or (bucket, key) in skip:
            continue
        seen.add((bucket, key))
        examined += 1
        index = fsm.objects.get(bucket)
        if index is None:
            continue
        before, waiting = len(tasks), False
        for rec in index.versions(key):
            vid = records.version_id_of(rec)
            policy, blobs = records.blob_placements(rec, fsm.atoms)
            for part, size, placement, blob_id in blobs:
                blob = (bucket, key, vid, part)
                if blob in busy or len(tasks) >= limit:
                    waiting = True
                    continue
                bad = damaged.get(blob, ())

                def holding(n: str, bad: Collection[str] = bad) -> bool:
                    return n not in bad and fsm.placements.holding(n)

                alive, width, needed = survivors(policy, placement, holding)
                layout = _layout(policy)
                if alive >= width or alive < needed or layout is None:
                    continue
                task = _task(ring, blob, blob_id, policy, layout, size, placement, width, holding, alive - needed,
                             writable, address, failed.get(blob, ()), free_bytes)
                if task is not None:
                    tasks.append(task)
                    if task.target in free_bytes:
                        free_bytes[task.target] -= blob_bytes(layout, size)
        if len(tasks) == before and not waiting:
            idle.append((bucket, key))
    if len(tasks) < limit:
        tasks += upload_part_repairs(fsm, ring, busy=busy, failed=failed, free_bytes=free_bytes,
                                     limit=limit - len(tasks), scan=scan, writable=writable, address=address,
                                     walk=part_walk)
    tasks.sort(key=lambda t: t.spare)
    return tasks, idle


def upload_parts_below(fsm: MetadataFSM) -> int:
    """Parts of uploads in progress with fewer holding copies than their policy's width (a
    copy on a node that no longer holds copies), from the uploads' per-node index."""
    holding = fsm.placements.holding
    below: set[Blob] = set()
    for node in [n for n in fsm.uploads.by_node if not holding(n)]:
        for info, up in fsm.uploads.parts_on(node):
            alive, width, _ = survivors(info.policy, up.part.placement, holding)
            if alive < width:
                below.add((info.bucket, info.key, up.part.version_id, up.part.number))
    return len(below)


def upload_part_repairs(fsm: MetadataFSM, ring: Ring, *, busy: Collection[Blob], failed: Mapping[Blob, Collection[str]],
                        free_bytes: dict[str, int], limit: int, scan: int, writable: set[str],
                        address: Mapping[str, str], walk: PartWalk | None = None) -> list[RepairTask]:
    """Tasks re-creating copies of parts of uploads in progress that a lost node held (see
    the rules), examining at most ``scan`` parts from where ``walk`` stopped last;
    ``free_bytes`` is lowered by what they will write."""
    tasks: list[RepairTask] = []
    planned: set[Blob] = set()
    examined = 0
    holding = fsm.placements.holding
    walk = walk if walk is not None else PartWalk()
    for info, up in walk.parts(fsm.uploads, [n for n in fsm.uploads.by_node if not holding(n)]):
        if len(tasks) >= limit or examined >= scan:
            return tasks
        examined += 1
        part = up.part
        blob = (info.bucket, info.key, part.version_id, part.number)
        layout = _layout(info.policy)
        if blob in busy or blob in planned or layout is None:
            continue  # (a part with copies on two lost nodes is listed under both)
        alive, width, needed = survivors(info.policy, part.placement, holding)
        if alive >= width or alive < needed:
            continue
        task = _task(ring, blob, part.version_id, info.policy, layout, part.size, part.placement, width, holding,
                     alive - needed, writable, address, failed.get(blob, ()), free_bytes)
        if task is not None:
            tasks.append(replace(task, upload_id=info.upload_id))
            planned.add(blob)
            if task.target in free_bytes:
                free_bytes[task.target] -= blob_bytes(layout, part.size)
    return tasks


def _task(ring: Ring, blob: Blob, blob_id: str, policy: str, layout: DataLayout, size: int,
          placement: tuple[str, ...], width: int, holding, spare: int, writable: set[str], address: Mapping[str, str],
          failed: Collection[str], free_bytes: Mapping[str, int]) -> RepairTask | None:
    bucket, key, vid, part = blob
    ec = layout.erasure_coded
    need = blob_bytes(layout, size)
    ring_key = blob_id if part else key
    # A writable node of the placement whose copy does not count was verified damaged:
    # its copy is rewritten in place first (its quarantine then counts it repaired).
    rewrite = [n for n in placement if n and n in writable and not holding(n)]
    order = rewrite + ring.locate(bucket, ring_key, width) + ring.locate_extra(bucket, ring_key, width)
    taken = set(placement) - set(rewrite)
    target = next((n for n in order if n in writable and n not in taken and n not in failed
                   and free_bytes.get(n, need) >= need), None)
    if target is None:
        return None
    if ec:
        slots = list(placement[:width]) + [""] * (width - len(placement))
        shard = slots.index(target) if target in slots else next(i for i, n in enumerate(slots)
                                                                 if not (n and holding(n)))
        sources = tuple(Source(n, address[n], i) for i, n in enumerate(slots) if n and holding(n) and n in address)
        new = tuple(target if i == shard else (n if n and holding(n) else "") for i, n in enumerate(slots))
    else:
        kept = list(dict.fromkeys(n for n in placement if n and holding(n)))
        shard = 0
        sources = tuple(Source(n, address[n], 0) for n in kept if n in address)
        new = tuple(kept + [target])
    return RepairTask(task_id(blob, shard, target), bucket, key, vid, part, policy, size, shard, target,
                      tuple(placement), new, sources, blob_id if blob_id != vid else "", spare)
