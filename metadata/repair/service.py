"""The metadata leader's repair service: plans tasks, leases them to storage nodes, commits
their results through Raft, verifies damage reports. IO at this edge only; the decisions
are :mod:`metadata.repair.planner` and :mod:`metadata.repair.queue`. The same service plans
rebalancing moves (:mod:`metadata.repair.rebalance`) with what repair leaves of each
round's budget: repair first, so copies are re-created before any is moved.

Invariants:
- Every placement change goes through the conditional ``RepairPlacement`` command; a
  commit carries its whole task, so it is safe on any leader, even one that never planned
  it (a leader change loses only soft state: queued tasks, reports, progress figures).
- A reported copy is dropped only after the leader verified it: a HEAD on its node answers
  404 (missing), or a full verified GET of a blob the node still has fails (corrupt).
- Only the leader answers leases and commits; every other member answers NotLeader
  naming it, so a worker asking a follower first is sent on at once.
- Reports are accepted up to ``MAX_PENDING_REPORTS`` waiting for verification; more are
  dropped (best effort: scrub and reads report again).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping

import aiohttp
from prometheus_client.core import GaugeMetricFamily

from metadata.api import commands as c
from objstore.repair_records import DamageReport, RepairOutcome, RepairTask
from metadata.fsm import records
from metadata.fsm.machine import MetadataFSM
from metadata.repair import planner, rebalance
from metadata.repair.queue import RepairQueue
from objstore.erasure.data_layout import DataLayout
from objstore.errors import InvalidArgument, ObjstoreError
from objstore.node.client import StorageClient
from objstore.types import WRITABLE_STATES

log = logging.getLogger(__name__)

MAX_PENDING_REPORTS = 1_000
PLAN_LIMIT = 256


class RepairService:
    """``rep`` is the node's Replicator (propose/read); ``free_bytes()`` the free space per
    node the leader knows of (from heartbeats; empty when unknown)."""

    def __init__(self, rep: Any, secret: str, tls: ssl.SSLContext | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 free_bytes: Callable[[], Mapping[str, int]] = dict,
                 lease_seconds: float = 30.0, plan_every: float = 0.5) -> None:
        self.rep = rep
        self.secret = secret
        self.tls = tls
        self.clock = clock
        self.free_bytes = free_bytes
        self.plan_every = plan_every
        self.queue = RepairQueue(lease_seconds)
        self.rebalance = rebalance.RebalanceState(clock=clock)
        self._last_plan = float("-inf")
        self._pending: deque[DamageReport] = deque()
        self._verifier: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._verifier is not None:
            self._verifier.cancel()
            await asyncio.gather(self._verifier, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # --- planning and leases ---------------------------------------------------------------

    async def plan_if_due(self) -> None:
        now = self.clock()
        if now - self._last_plan < self.plan_every:
            return
        self._last_plan = now
        q = self.queue
        reported = list(q.reported)
        free = dict(self.free_bytes())
        skip = q.passed_over(now)

        def run(fsm: MetadataFSM) -> tuple[list[RepairTask], list[tuple[str, str]], set[str]]:
            nonlocal skip
            if self.rebalance.ring_changed(fsm.cluster_map()):  # the walk restarts, and nothing is passed over
                q.forget_passed_over()
                skip = set()
            busy = q.busy()
            tasks, idle = planner.plan_round(fsm, reported=reported, damaged=q.damaged, busy=busy,
                                             failed=q.failed, free_bytes=free, skip=skip, limit=PLAN_LIMIT,
                                             part_walk=q.part_walk)
            if len(tasks) < PLAN_LIMIT:
                moves, stuck = self.rebalance.plan(fsm, busy=busy | {t.blob_key for t in tasks}, failed=q.failed,
                                                   free_bytes=free, skip=skip, limit=PLAN_LIMIT - len(tasks))
                tasks, idle = tasks + moves, idle + stuck
            writable = {n.node_id for n in fsm.cluster_map().nodes if n.state in WRITABLE_STATES}
            return tasks, idle, writable

        tasks, idle, writable = await self.rep.read(run)
        q.replace_planned(tasks, writable, now)
        q.gave_nothing(idle, now)

    def _leading(self) -> None:
        """Only the leader leases and takes results: raise NotLeader (naming the leader) on
        any other member, every time. A follower's queue is empty, and an answer from it
        ("no task", "failure noted") would be taken by the worker for the leader's: the
        worker would idle for a poll while the leader holds its tasks, and a failure
        would be lost."""
        if not self.rep.is_leader():
            raise self.rep.not_leader()

    async def lease(self, node_id: str, count: int) -> list[RepairTask]:
        """Tasks for storage node ``node_id`` to do (planning first when due)."""
        self._leading()
        await self.plan_if_due()
        return self.queue.lease(node_id, count, self.clock())

    async def commit(self, task: RepairTask, ok: bool, copied_at: float = 0.0) -> RepairOutcome:
        """Record a task's result: with ``ok`` its copy (started at ``copied_at`` on the
        target's clock) is durable on its target, so propose its new placement; otherwise
        remember that the target failed this blob."""
        self._leading()
        if not ok:
            self.queue.finished(task, False, "failed", self.clock())
            return RepairOutcome(False, "failed")
        cmd = c.RepairPlacement(task.bucket, task.key, task.version_id, task.part, list(task.expected),
                                list(task.placement), copied_at, upload_id=task.upload_id)
        # The task came from the storage node's JSON: check its fields here, as the command
        # routes do, since the members apply the logged command without checking them.
        c.check_types(cmd)
        outcome = (await self.rep.propose(cmd)).result(c.RepairPlacement)
        self.queue.finished(task, outcome.applied, outcome.reason, self.clock())
        if task.move and outcome.applied:
            self.rebalance.moved(task, self.clock())
        return outcome

    # --- reports ---------------------------------------------------------------------------

    async def report(self, reports: list[DamageReport]) -> int:
        """Queue reports for verification; returns how many were accepted."""
        await self.rep.read(lambda fsm: None)  # only the leader takes them
        room = max(0, MAX_PENDING_REPORTS - len(self._pending))
        accepted = reports[:room]
        self._pending.extend(accepted)
        if accepted and (self._verifier is None or self._verifier.done()):
            self._verifier = asyncio.get_running_loop().create_task(self._verify_pending())
        return len(accepted)

    async def _verify_pending(self) -> None:
        while self._pending:
            r = self._pending.popleft()
            try:
                damaged = await self.verified(r)
                if damaged is not None:
                    self.queue.mark_damaged(damaged)
            except Exception as exc:  # noqa: BLE001 - a report that cannot be checked is dropped
                log.info("damage report %s could not be verified: %r", r, exc)

    def _where(self, fsm: MetadataFSM, r: DamageReport) -> tuple[str, int, str, DamageReport] | None:
        """(node address, shard, blob id, the report naming the version and part of the
        record) of the reported copy, if the record still places it there. A node reports a
        multipart part as ``part`` 0 under the part's own version id (its blob id): that
        matches the part of the version whose blob id it is."""
        index = fsm.objects.get(r.bucket)
        node = fsm.nodes.get(r.node_id)
        if index is None or node is None:
            return None
        for rec in index.versions(r.key):
            vid = records.version_id_of(rec)
            policy, blobs = records.blob_placements(rec, fsm.atoms)
            for part, _, placement, blob_id in blobs:
                own = vid == r.version_id and part == r.part
                by_blob = r.part == 0 and part != 0 and blob_id == r.version_id
                if not (own or by_blob) or r.node_id not in placement:
                    continue
                try:
                    ec = DataLayout.parse(policy).erasure_coded
                except InvalidArgument:
                    ec = False
                shard = placement.index(r.node_id) if ec else 0
                return node.address, shard, blob_id, replace(r, version_id=vid, part=part, shard=shard if ec else -1)
        return None

    async def verify(self, r: DamageReport) -> bool:
        """True when the reported copy is really missing or corrupt on its node."""
        return await self.verified(r) is not None

    async def verified(self, r: DamageReport) -> DamageReport | None:
        """The report resolved to its record's version and part (see :meth:`_where`) when
        the reported copy is really missing or corrupt on its node, else None."""
        where = await self.rep.read(lambda fsm: self._where(fsm, r))
        if where is None:
            return None
        address, shard, blob_id, resolved = where
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=3))
        storage = StorageClient(self._session, self.secret, tls=self.tls)
        head = await storage.head_blob(address, blob_id, shard)  # ServiceUnavailable: node down, not damage
        if head is None:
            return resolved
        if r.reason != "corrupt":
            return None
        try:
            async with storage.get_blob(address, blob_id, shard) as blob:
                async for _ in blob.iter_chunks():
                    pass
        except ObjstoreError:
            return resolved
        return None

    # --- progress --------------------------------------------------------------------------

    async def rebalance_status(self) -> dict[str, Any]:
        """Objects and bytes misplaced, moved, rate, ETA, the walk's progress, moves in flight."""
        def read(fsm: MetadataFSM) -> tuple[int, int, int]:
            if self.rebalance.ring_changed(fsm.cluster_map()):  # a change not planned for yet: walk again
                self.queue.forget_passed_over()
            return fsm.object_count(), rebalance.draining_keys(fsm), rebalance.draining_parts(fsm)

        keys, draining, parts = await self.rep.read(read)
        now = self.clock()
        st = self.rebalance.status(keys, draining, now, parts)
        moves = [x for x in self.queue.tasks.values() if x.task.move]
        st["in_flight"] = sum(1 for x in moves if x.until > now)
        st["queued"] = len(moves) - st["in_flight"]
        return st

    async def status(self) -> dict[str, Any]:
        counts = await self.rep.read(lambda fsm: {**fsm.placements.counts(),
                                                   "upload_parts_below_policy": planner.upload_parts_below(fsm)})
        st = {**counts, **self.queue.status(self.clock())}
        rate = st["rate_bytes_per_second"]
        st["eta_seconds"] = st["bytes_below_policy"] / rate if rate > 0 else None
        return st


class RebalanceCollector:
    """On the leader only: ``objstore_cluster_objects_misplaced`` and
    ``objstore_cluster_bytes_misplaced`` (keys known misplaced, and their bytes with those
    of parts of uploads in progress known misplaced: the
    rebalancer's soft state, complete once its walk is; see metadata.repair.rebalance)."""

    def __init__(self, rep: Any, service: RepairService) -> None:
        self._rep = rep
        self._service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self._rep.is_leader():
            return
        st = self._service.rebalance
        yield GaugeMetricFamily("objstore_cluster_objects_misplaced",
                                "Keys whose placement is not the ring's (rebalancing moves them)",
                                value=float(len(st.misplaced)))
        yield GaugeMetricFamily("objstore_cluster_bytes_misplaced", "Bytes of blobs whose placement is not the ring's",
                                value=float(st.misplaced_bytes()))
