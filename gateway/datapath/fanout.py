"""Sending one blob's bytes to several storage nodes at once, with bounded waits.

Used for replicas (the same bytes to every node) and for erasure-coded shards (shard i to
node i). Each target is one upload, fed whole (small bodies, verified first) or through a
bounded queue of ``depth`` items drained by its upload (memory is bounded by ``depth``
items per target, never by the blob size).

Invariants:
- A target whose node answers 507 InsufficientStorage before taking any byte of its body
  (streamed uploads ask for ``100-continue``; whole bodies are still in memory) is
  re-sent, from its first byte, to a handoff node no other target of this blob uses; the
  full node is suspected for ``FULL_SUSPECT_SECONDS``. A 507 after the body started (a
  disk filling mid-stream) only loses that target.
- Stragglers are abandoned, never waited on without bound: once ``quorum`` targets
  acknowledged, the others get ``straggler`` seconds more, then their requests are
  cancelled. Below ``quorum``, a whole-body target whose node has not answered within
  ``straggler`` seconds of its upload being sent (at the write's start, or at its last
  hand-off, for a full node or for silence) is abandoned and
  re-sent to a handoff node, as a full node's is: a write whose placement has nodes that
  went silent (cut off, paused) reaches W on other nodes instead of waiting for the
  storage client's timeout on each. Once W stored it, a target still unanswered that was
  re-sent so is abandoned at once (the write already waited a straggler bound for it), so
  silent nodes cost a write one straggler bound, not two. While the body streams, a target whose queue stays full for ``straggler``
  seconds is dropped as long as at least ``quorum`` other targets keep up (their queues
  have room; with fewer, the write keeps waiting: the node and body timeouts bound it). Abandoned nodes are
  suspected, so the next writes go to handoff nodes. A copy an abandoned node completes
  anyway is referenced by no record (garbage collection's to find).
- ``abort`` (the body failed) ends every upload without completing its blob.
- A write cancelled as a whole (the client went away, the request timed out) cancels every
  upload still running, handoffs and stragglers past W included: no record will name
  the blob, so nothing is left to hold a connection until the storage timeout. Copies
  already stored are left, as an abandoned node's are, to garbage collection.
- The outcome lists, per target index, the node that stored it ("" for none); below
  ``quorum`` the blobs stored are deleted again and InsufficientReplicas is raised.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Collection, Sequence

from objstore.errors import InsufficientReplicas, InsufficientStorage, ObjstoreError
from objstore.node.client import StorageClient
from objstore.types import NodeInfo

from gateway.datapath.arrivals import Arrivals
from gateway.topology import Topology

log = logging.getLogger(__name__)

FULL_SUSPECT_SECONDS = 30.0  # a full node gets no new blobs from this gateway for this long
DEFAULT_STRAGGLER_SECONDS = 2.0
_EOF = object()

Upload = Callable[[NodeInfo, int, "AsyncIterator[bytes] | bytes"], Awaitable[dict]]
"""Send target ``index``'s body to a node: ``upload(node, index, body)``; a coroutine (run
as a task) or a future already under way (a whole body queued in its node's blob lane: no
task per target), cancelled when the target is abandoned."""
Handoff = Callable[[Collection[str]], "NodeInfo | None"]
"""A node for a target whose node is full, not one of the ids given; None if there is none."""


class _Aborted(Exception):
    """The source body failed, or the target was dropped; the upload must not complete."""


@dataclass(eq=False)
class _Target:
    index: int
    node: NodeInfo
    whole: bytes | None = None
    queue: asyncio.Queue | None = None
    task: asyncio.Future | None = None  # the upload: a task, or the future of a queued write
    started: bool = False  # the upload took its first item from the queue
    outcome: object = None  # set when the target was ended here (aborted, abandoned)
    resent: bool = False  # handed off for silence below W (the write waited a straggler bound for it)
    sent_at: float = 0.0  # loop time its current upload started (silence is counted from it)


class FanOut:
    """One blob's uploads to ``nodes`` (target i to ``nodes[i]``); see the module invariants."""

    def __init__(self, storage: StorageClient, topology: Topology, nodes: Sequence[NodeInfo], upload: Upload, *,
                 version_id: str, quorum: int, straggler: float = DEFAULT_STRAGGLER_SECONDS,
                 handoff: Handoff | None = None, shards: bool = False) -> None:
        self._storage = storage
        self._topology = topology
        self._upload = upload
        self._handoff = handoff
        self.version_id = version_id
        self.quorum = quorum
        self.straggler = straggler
        self.shards = shards
        self.targets = [_Target(i, n) for i, n in enumerate(nodes)]
        self.live = list(self.targets)
        self._used = {n.node_id for n in nodes}

    # --- whole bodies --------------------------------------------------------------------

    async def send_whole(self, bodies: Sequence[bytes]) -> list[str]:
        """Send ``bodies[i]`` to target i in one request each; the placement (see ``settle``)."""
        for t in self.targets:
            t.whole = bodies[t.index]
            self._start(t)
        try:
            return await self._collect(self.targets)
        except asyncio.CancelledError:
            self._cancel()
            raise

    # --- streamed bodies -----------------------------------------------------------------

    def open_streams(self, depth: int) -> None:
        """Start one upload per target, each fed by its own queue of ``depth`` items."""
        for t in self.targets:
            t.queue = asyncio.Queue(maxsize=depth)
            self._start(t)

    async def send(self, items: Sequence[object]) -> None:
        """Queue ``items[i]`` for every live target i (dropping targets that fail or stall)."""
        for t in list(self.live):
            if not await self._put(t, items[t.index]):
                self.live.remove(t)

    async def finish(self) -> list[str]:
        """The body is all queued: complete the live uploads if ``quorum`` are left (else
        abort them too) and return the placement (see ``settle``)."""
        try:
            if len(self.live) >= self.quorum:
                for t in list(self.live):
                    if not await self._put(t, _EOF):
                        self.live.remove(t)
            if len(self.live) < self.quorum:
                for t in self.live:
                    t.outcome = _Aborted()  # too few nodes left: abort rather than finish a short body
                self._end(self.live)
                self.live = []
            self._end([t for t in self.targets if t not in self.live])
            return await self._collect(self.live)
        except asyncio.CancelledError:
            self._cancel()
            raise

    async def abort(self, exc: BaseException) -> None:
        """The body failed with ``exc``: end every upload without completing its blob (the
        write cancelled: cancel them, as an upload stalled mid-body never reads its end)."""
        for t in self.targets:
            if t.outcome is None:
                t.outcome = _Aborted()
        if isinstance(exc, asyncio.CancelledError):
            self._cancel()
        else:
            self._end(self.targets, exc if isinstance(exc, Exception) else _Aborted())
        await asyncio.gather(*(t.task for t in self.targets if t.task), return_exceptions=True)

    # --- the parts -----------------------------------------------------------------------

    def _start(self, t: _Target) -> None:
        t.started = False
        t.sent_at = asyncio.get_running_loop().time()
        body: AsyncIterator[bytes] | bytes = t.whole if t.whole is not None else self._queue_body(t)
        t.task = asyncio.ensure_future(self._upload(t.node, t.index, body))

    async def _queue_body(self, t: _Target) -> AsyncIterator[bytes]:
        assert t.queue is not None
        t.started = True
        while True:
            item = await t.queue.get()
            if item is _EOF:
                return
            if isinstance(item, BaseException):
                raise _Aborted() from item
            yield item

    def _hand_off(self, t: _Target) -> bool:
        """Re-send a target refused for space before its body started; False if it cannot be."""
        assert t.task is not None and t.task.done()
        exc = None if t.task.cancelled() else t.task.exception()
        if not isinstance(exc, InsufficientStorage) or t.started or self._handoff is None:
            return False
        self._topology.suspect(t.node.node_id, FULL_SUSPECT_SECONDS)
        node = self._handoff(self._used)
        if node is None:
            log.info("%s: %s is full and no handoff node is left", self.version_id, t.node.node_id)
            return False
        log.info("%s: %s is full, target %d handed off to %s", self.version_id, t.node.node_id, t.index,
                 node.node_id)
        self._used.add(node.node_id)
        t.node = node
        self._start(t)
        return True

    async def _put(self, t: _Target, item: object) -> bool:
        """Queue ``item`` for ``t``; False if its upload ended (failed) or it was dropped."""
        assert t.queue is not None and t.task is not None
        while True:
            if t.task.done():
                if self._hand_off(t):
                    continue
                return False
            if not t.queue.full():
                t.queue.put_nowait(item)
                return True
            put = asyncio.ensure_future(t.queue.put(item))
            try:
                await asyncio.wait({put, t.task}, timeout=self.straggler, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not put.done():
                    put.cancel()
            if put.done() and not put.cancelled():
                return True
            keeping_up = self._keeping_up(t)
            if not t.task.done() and keeping_up >= self.quorum:
                self._abandon(t, f"took nothing for {self.straggler:g} s while {keeping_up} others kept up")
                return False

    def _keeping_up(self, t: _Target) -> int:
        """Live targets other than ``t`` with room in their queue (after ``t`` held the
        pump up for a straggler bound, a full queue means that target is stalled too)."""
        return sum(1 for o in self.live if o is not t and o.task is not None and not o.task.done()
                   and o.queue is not None and not o.queue.full())

    def _abandon(self, t: _Target, why: str) -> None:
        log.warning("%s: abandoning %s (target %d): %s", self.version_id, t.node.node_id, t.index, why)
        t.outcome = _Aborted(why)
        self._topology.suspect(t.node.node_id)
        assert t.task is not None
        t.task.cancel()

    def _end(self, targets: Sequence[_Target], item: Exception | None = None) -> None:
        """End uploads that are not to complete: an upload that started reading its queue
        gets ``item`` (it raises mid-body, so the node stores nothing); one still waiting
        for "100 Continue" is cancelled."""
        for t in targets:
            if t.task is None or t.task.done():
                continue
            if t.started and t.queue is not None:
                _force_put(t.queue, item or _Aborted())
            else:
                t.task.cancel()

    def _cancel(self) -> None:
        """The write was cancelled: cancel every upload still running (its current one: a
        target handed off runs only at its handoff node); the outcome of one that ended
        unseen is taken (nobody will: no "exception was never retrieved" for it)."""
        for t in self.targets:
            if t.task is not None and not t.task.done():
                t.task.cancel()
            else:
                _taken(t.task)

    def _hand_off_silent(self, t: _Target) -> bool:
        """Abandon a whole-body target whose node is silent (below W, see the module
        invariants) and re-send it to a handoff node; False if it cannot be."""
        if t.whole is None or self._handoff is None or t.task is None or t.task.done():
            return False
        node = self._handoff(self._used)
        if node is None:
            return False
        self._abandon(t, f"no answer in {self.straggler:g} s while fewer than {self.quorum} stored the blob; "
                         f"target {t.index} handed off to {node.node_id}")
        t.outcome = None  # the target goes on at the handoff node
        t.resent = True
        self._used.add(node.node_id)
        t.node = node
        self._start(t)
        return True

    async def _collect(self, targets: Sequence[_Target]) -> list[str]:
        """Wait for ``targets``: all of them, or ``straggler`` seconds more once ``quorum``
        succeeded (below it, a whole-body target silent ``straggler`` seconds after it was
        sent is handed off, while handoff nodes are left); then settle every target's outcome."""
        loop = asyncio.get_running_loop()
        pending = {t.task: t for t in targets if t.task is not None}
        arrivals = Arrivals(pending)
        stored = 0
        deadline: float | None = None
        silent_at: float | None = loop.time() + self.straggler  # below W: when silent targets are handed off
        try:
            while pending:
                until = deadline if deadline is not None else silent_at
                timeout = None if until is None else max(until - loop.time(), 0)
                done = await arrivals.next(timeout)
                if not done and deadline is None and silent_at is not None:
                    now = loop.time()
                    silent_at = None
                    for task, t in list(pending.items()):
                        due = t.sent_at + self.straggler
                        if due > now:  # sent later (a full node's handoff): silent a bound after that
                            silent_at = due if silent_at is None else min(silent_at, due)
                        elif self._hand_off_silent(t):
                            del pending[task]
                            pending[t.task] = t  # type: ignore[index]
                            arrivals.add(t.task)  # type: ignore[arg-type]
                            due = t.sent_at + self.straggler
                            silent_at = due if silent_at is None else min(silent_at, due)
                    continue
                if not done:
                    break
                for task in done:
                    t = pending.pop(task, None)
                    if t is None:
                        continue
                    if not task.cancelled() and task.exception() is None:
                        stored += 1
                    elif self._hand_off(t):
                        pending[t.task] = t  # type: ignore[index]
                        arrivals.add(t.task)  # type: ignore[arg-type]
                if stored >= self.quorum and deadline is None:
                    deadline = loop.time() + self.straggler
                    # A target re-sent for silence gets no second straggler bound: the write
                    # already waited one for it (a silent handoff node would double it).
                    for task, t in list(pending.items()):
                        if t.resent:
                            del pending[task]
                            self._abandon(t, f"{stored} nodes stored the blob after it was handed off")
        finally:
            arrivals.close()
        for t in pending.values():
            self._abandon(t, f"no answer {self.straggler:g} s after {stored} nodes stored the blob")
        running = [t.task for t in self.targets if t.task and not t.task.done()]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        return await self.settle()

    async def settle(self) -> list[str]:
        """The node of each target that stored its blob ("" where none did); suspects nodes
        that failed. Below ``quorum``: the blobs stored are deleted, InsufficientReplicas."""
        placement: list[str] = []
        for t in self.targets:
            task = t.task
            res = t.outcome
            if res is None and task is not None:
                res = asyncio.CancelledError() if task.cancelled() else task.exception() or task.result()
            if isinstance(res, BaseException):
                placement.append("")
                if isinstance(res, (_Aborted, asyncio.CancelledError)):
                    continue
                log.warning("write of %s to %s failed: %s", self.version_id, t.node.node_id, res)
                if isinstance(res, InsufficientStorage):
                    self._topology.suspect(t.node.node_id, FULL_SUSPECT_SECONDS)
                elif not isinstance(res, ObjstoreError) or res.status >= 500:
                    self._topology.suspect(t.node.node_id)
            else:
                placement.append(t.node.node_id)
        stored = [i for i, p in enumerate(placement) if p]
        if len(stored) < self.quorum:
            await delete_blobs(self._storage, [self.targets[i].node for i in stored], self.version_id,
                               stored if self.shards else None)
            raise InsufficientReplicas(
                f"Only {len(stored)} of {len(self.targets)} storage nodes stored the object; "
                f"{self.quorum} are required."
            )
        return placement


def _taken(upload: asyncio.Future | None) -> None:
    """Mark an ended upload's error as retrieved (an upload whose outcome is not used)."""
    if upload is not None and upload.done() and not upload.cancelled():
        upload.exception()


def _force_put(q: asyncio.Queue, item: object) -> None:
    """Put ``item`` even if the queue is full (dropping queued chunks: the upload is ending)."""
    while q.full():
        q.get_nowait()
    q.put_nowait(item)


async def delete_blobs(storage: StorageClient, nodes: Sequence[NodeInfo], version_id: str,
                       shards: Sequence[int] | None = None) -> None:
    """Best-effort removal of a blob from nodes (garbage collection repeats what fails):
    the replica (shard 0) from each node, or with ``shards`` shard ``shards[i]`` from ``nodes[i]``."""
    async def one(n: NodeInfo, shard: int) -> None:
        try:
            await storage.delete_blob(n.address, version_id, shard)
        except Exception as exc:  # noqa: BLE001
            log.info("could not delete %s from %s: %s", version_id, n.node_id, exc)

    await asyncio.gather(*(one(n, 0 if shards is None else shards[i]) for i, n in enumerate(nodes)))
