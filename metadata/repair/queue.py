"""The metadata leader's repair soft state: tasks leased to storage nodes, copies reported
and verified damaged, progress figures. Pure (the clock is passed in); not replicated:
a new leader starts empty and plans again from the records, which is always safe because
every repair commits through the conditional RepairPlacement.

Invariants:
- At most one task per blob (``RepairTask.blob_key``) is queued or leased.
- A leased task is handed out again only after its lease expires (``lease_seconds``), so a
  worker that crashed mid-copy loses nothing: its target leases the task again (the copy
  is idempotent: the same blob id and shard), or, once its target is no longer writable,
  the task is dropped at the next planning and planned again for another node.
- Every table is bounded: ``MAX_TASKS`` tasks, ``MAX_REPORTED`` reported keys,
  ``MAX_DAMAGED`` damaged blobs, ``MAX_FAILED`` failed targets (and as many nodes' last
  lease times, and failure counts), ``MAX_IDLE`` keys passed over, ``RATE_WINDOW`` commits for the rate.
- A task is counted as failed by its target when no worker claims it: for
  ``unclaimed_seconds`` the target neither asked for tasks nor held a lease (it runs no
  worker). A target busy with a long
  queue keeps its tasks however long they wait. A target that failed a blob is passed over
  for that blob for a while (another node is tried meanwhile, when there is one: a move has
  only its ring owner), then tried again, so a transient failure never strands a blob: for
  ``FAILED_FIRST_SECONDS`` after its first failure, twice as long after each further
  failure of that blob, at most ``FAILED_SECONDS``. A failure is often the sources' (a
  node just restarted on another address, not heartbeating yet), so a move waits seconds
  for its only target, not a minute; a blob that keeps failing costs one attempt a minute.
- A key that gave no task (no target with room, nothing readable left) is passed over for
  ``IDLE_SECONDS`` so it does not hide the keys behind it, and no longer once the ring or
  the set of writable nodes changes (``forget_passed_over``): a node added, drained or
  reweighted may be the target it lacked, so rebalancing starts at the next planning; nor
  once a failure that kept a target from one of its blobs is forgotten (a move has only
  its ring owner: passed over 10 s, it would wait 10 s, not the failure's few seconds).
"""
from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Iterable

from objstore.repair_records import DamageReport, RepairTask
from metadata.repair.part_walk import PartWalk

Blob = tuple[str, str, str, int]

MAX_TASKS = 10_000
MAX_REPORTED = 10_000
MAX_DAMAGED = 10_000
MAX_FAILED = 10_000
RATE_WINDOW = 1_000
MAX_IDLE = 100_000
FAILED_FIRST_SECONDS = 2.0  # a target that failed a blob is not given it again for this long,
FAILED_SECONDS = 60.0  # doubled at each further failure of the blob, up to this
IDLE_SECONDS = 10.0  # a key that gave no task is passed over this long (or until the ring changes)
RATE_SECONDS = 60.0
STATUS_TASKS = 20  # tasks listed in the status


@dataclass
class _Leased:
    task: RepairTask
    since: float  # when it was queued
    until: float = 0.0  # lease expiry; 0: not leased
    leased: bool = False  # ever leased


class RepairQueue:
    """See the module docstring."""

    def __init__(self, lease_seconds: float = 30.0, unclaimed_seconds: float = 60.0) -> None:
        self.lease_seconds = lease_seconds
        self.unclaimed_seconds = unclaimed_seconds
        self.tasks: OrderedDict[Blob, _Leased] = OrderedDict()
        self.reported: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.damaged: OrderedDict[Blob, set[str]] = OrderedDict()
        self.failed: OrderedDict[Blob, set[str]] = OrderedDict()
        self._failed_until: dict[Blob, float] = {}  # until when each blob of ``failed`` is passed over
        self._strikes: OrderedDict[Blob, int] = OrderedDict()  # failures in a row of each blob
        self.last_lease: OrderedDict[str, float] = OrderedDict()  # node -> when it last asked for tasks
        self.idle: OrderedDict[tuple[str, str], float] = OrderedDict()  # key -> when it gave no task
        self.part_walk = PartWalk()  # where the last round stopped among lost nodes' upload parts
        self.repaired_objects = 0
        self.repaired_bytes = 0
        self.stale = 0
        self.failures = 0
        self._commits: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)

    # --- reports ---------------------------------------------------------------------------

    def report(self, bucket: str, key: str) -> None:
        """Check (bucket, key) first at the next planning."""
        self.reported.pop((bucket, key), None)
        self.reported[(bucket, key)] = None
        while len(self.reported) > MAX_REPORTED:
            self.reported.popitem(last=False)

    def mark_damaged(self, r: DamageReport) -> None:
        """A reported copy was verified missing or corrupt: do not count it as surviving."""
        blob = (r.bucket, r.key, r.version_id, r.part)
        self.damaged.setdefault(blob, set()).add(r.node_id)
        self.damaged.move_to_end(blob)
        while len(self.damaged) > MAX_DAMAGED:
            self.damaged.popitem(last=False)
        self.report(r.bucket, r.key)

    # --- tasks -----------------------------------------------------------------------------

    def busy(self) -> set[Blob]:
        return set(self.tasks)

    def passed_over(self, now: float) -> set[tuple[str, str]]:
        """Keys that recently gave no task (the planner passes them over)."""
        while self.idle and next(iter(self.idle.values())) < now - IDLE_SECONDS:
            self.idle.popitem(last=False)
        return set(self.idle)

    def forget_passed_over(self) -> None:
        """The ring or the writable nodes changed: a key that gave no task may give one now."""
        self.idle.clear()

    def gave_nothing(self, keys: Iterable[tuple[str, str]], now: float) -> None:
        for k in keys:
            self.idle.pop(k, None)
            self.idle[k] = now
        while len(self.idle) > MAX_IDLE:
            self.idle.popitem(last=False)

    def replace_planned(self, planned: Iterable[RepairTask], writable: set[str], now: float) -> None:
        """Add newly planned tasks; drop tasks, leased or not, whose target can no longer take
        blobs (a late commit from such a target is still safe: it is conditional), and tasks
        no worker leased within ``unclaimed_seconds`` (counted as failed by their target, so
        the blob is planned for another node)."""
        for blob in [b for b, until in self._failed_until.items() if until <= now]:
            del self.failed[blob], self._failed_until[blob]
            self.idle.pop(blob[:2], None)  # its key gave no task for that failure: it may give one now
        working = {x.task.target for x in self.tasks.values() if x.until > now}  # holding a live lease
        for blob, item in list(self.tasks.items()):
            target = item.task.target
            if target not in writable:
                del self.tasks[blob]
            elif (not item.leased and now - item.since > self.unclaimed_seconds and target not in working
                  and now - self.last_lease.get(target, float("-inf")) > self.unclaimed_seconds):
                self.finished(item.task, False, "failed", now)  # its target runs no worker: another one
        for t in planned:
            if len(self.tasks) >= MAX_TASKS:
                break
            if t.blob_key not in self.tasks:
                self.tasks[t.blob_key] = _Leased(t, now)
        planned_keys = {(t.bucket, t.key) for t in self.tasks.values() for t in (t.task,)}
        for k in [k for k in self.reported if k in planned_keys]:
            del self.reported[k]

    def waiting_for(self, node_id: str, now: float) -> int:
        return sum(1 for x in self.tasks.values() if x.task.target == node_id and x.until <= now)

    def lease(self, node_id: str, count: int, now: float) -> list[RepairTask]:
        """Up to ``count`` tasks whose target is ``node_id``, not leased or whose lease ran
        out, fewest spare copies first; each is leased until ``now + lease_seconds``."""
        self._seen(node_id, now)
        free = [x for x in self.tasks.values() if x.task.target == node_id and x.until <= now]
        free.sort(key=lambda x: x.task.spare)
        out = []
        for x in free[: max(count, 0)]:
            x.until = now + self.lease_seconds
            x.leased = True
            out.append(x.task)
        return out

    def _seen(self, node_id: str, now: float) -> None:
        """``node_id``'s worker asked for tasks or reported one: it is running."""
        self.last_lease.pop(node_id, None)
        self.last_lease[node_id] = now
        while len(self.last_lease) > MAX_FAILED:
            self.last_lease.popitem(last=False)

    def finished(self, task: RepairTask, applied: bool, reason: str, now: float) -> None:
        """The outcome of a task's commit (or of its failure: ``reason`` "failed")."""
        current = self.tasks.get(task.blob_key)
        if current is not None and current.task.task_id == task.task_id:
            del self.tasks[task.blob_key]
        self.idle.pop((task.bucket, task.key), None)
        if reason != "failed":
            self._strikes.pop(task.blob_key, None)
        if applied and task.move:
            pass  # a rebalancing move: counted by metadata.repair.rebalance
        elif applied:
            self.repaired_objects += 1
            self.repaired_bytes += task.size
            self._commits.append((now, task.size))
            self.damaged.pop(task.blob_key, None)
        elif reason == "failed":
            self.failures += 1
            blob = task.blob_key
            strikes = self._strikes.pop(blob, 0) + 1
            self._strikes[blob] = strikes
            while len(self._strikes) > MAX_FAILED:
                self._strikes.popitem(last=False)
            self.failed.setdefault(blob, set()).add(task.target)
            self.failed.move_to_end(blob)
            self._failed_until[blob] = now + min(FAILED_SECONDS, FAILED_FIRST_SECONDS * 2 ** min(strikes - 1, 16))
            while len(self.failed) > MAX_FAILED:
                del self._failed_until[self.failed.popitem(last=False)[0]]
        else:
            self.stale += 1

    # --- progress --------------------------------------------------------------------------

    def rate(self, now: float) -> float:
        """Bytes per second repaired over the last ``RATE_SECONDS``."""
        recent = [(t, n) for t, n in self._commits if t >= now - RATE_SECONDS]
        if not recent:
            return 0.0
        span = max(now - recent[0][0], 1.0)
        return sum(n for _, n in recent) / span

    def status(self, now: float) -> dict[str, Any]:
        leased = [x for x in self.tasks.values() if x.until > now]
        return {
            "queued": len(self.tasks) - len(leased),
            "in_flight": len(leased),
            "in_flight_bytes": sum(x.task.size for x in leased),
            "repaired_objects": self.repaired_objects,
            "repaired_bytes": self.repaired_bytes,
            "stale_commits": self.stale,
            "failed_tasks": self.failures,
            "reported_keys": len(self.reported),
            "damaged_copies": sum(len(v) for v in self.damaged.values()),
            "rate_bytes_per_second": self.rate(now),
            "tasks": [{"bucket": x.task.bucket, "key": x.task.key, "part": x.task.part, "shard": x.task.shard,
                       "target": x.task.target, "size": x.task.size, "leased": x.until > now}
                      for x in list(self.tasks.values())[:STATUS_TASKS]],
        }
