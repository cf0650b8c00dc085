"""The metadata service core: the Replicator interface and its single-node implementation.

The HTTP layer (:mod:`metadata.app`) only ever calls a :class:`Replicator`:
``propose(cmd)`` to change state and ``read(fn)`` to look at it. The Raft-replicated
implementation, :class:`metadata.replication.driver.RaftReplicator`, plugs in behind the same
interface (its log entries carry the same encoded commands; ``read`` gains ReadIndex);
:class:`SingleNodeReplicator` is the one-replica case without Raft (a node started with
neither ``--peers`` nor ``--join``).

Single-node invariants:
- A proposal is appended to the durable log with the node's current term, made durable by
  group commit, then applied to the state machine strictly in index order; its outcome is
  returned only after it is applied, so an acknowledged command survives any crash.
- Every restart is a new term (persisted in the hard state before serving), as if this
  node won an election.
- Every ``snapshot_every`` applied entries a snapshot is written: the state is frozen on
  the event loop (a shallow copy, milliseconds), then encoded and written in a thread while
  commands go on being applied. The log is compacted only up to the older of the two kept
  snapshots, so a damaged newest snapshot can still be recovered from.
- Restart = newest valid snapshot + replay of the log entries after it.
"""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

from metadata.api.commands import Command, Outcome, decode_command, encode_command
from metadata.storage.durable import HardState, SnapshotStore, load_hard_state, save_hard_state
from metadata.fsm.machine import MetadataFSM
from metadata.fsm.snapshot import freeze, frozen_chunks, restore
from metadata.storage.log import DEFAULT_SEGMENT_BYTES, DiskLog, Entry, LogClosedError
from metadata.storage.log_format import CorruptLogError
from objstore.errors import ServiceUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

REPLAY_BATCH = 1000


class Replicator(Protocol):
    """How the service changes and reads the replicated state machine."""

    async def propose(self, cmd: Command) -> Outcome:
        """Commit ``cmd`` and return its outcome once applied; raises NotLeader or
        ServiceUnavailable when it cannot be committed here."""
        ...

    async def read(self, fn: Callable[[MetadataFSM], T]) -> T:
        """Run ``fn`` on state that includes every command acknowledged before the call."""
        ...

    def status(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class SingleNodeReplicator:
    """One replica: durable log + state machine + snapshots in ``data_dir``."""

    def __init__(self, node_id: str, data_dir: Path, log_: DiskLog, snapshots: SnapshotStore,
                 fsm: MetadataFSM, term: int, applied_term: int, snapshot_index: int, snapshot_every: int) -> None:
        self.node_id = node_id
        self.data_dir = data_dir
        self.log = log_
        self.snapshots = snapshots
        self.fsm = fsm
        self.term = term
        self.snapshot_every = snapshot_every
        self.commit_index = fsm.applied_index
        self.snapshot_index = snapshot_index
        self._applied_term = applied_term
        self._waiting: dict[int, tuple[Command, asyncio.Future]] = {}
        self._snapshot_task: asyncio.Task | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, data_dir: Path | str, node_id: str, snapshot_every: int = 10_000,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> "SingleNodeReplicator":
        """Recover from disk (snapshot + log tail) and start a new term; raises CorruptLogError."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        snapshots = SnapshotStore(data_dir / "snapshots")
        meta = await loop.run_in_executor(None, snapshots.latest_valid)
        fsm = MetadataFSM()
        applied_term = 0
        if meta is not None:
            fsm = await loop.run_in_executor(None, lambda: restore(snapshots.read_lines(meta)))
            applied_term = meta.term
        dlog = await DiskLog.open(data_dir / "log", segment_bytes)
        try:
            if dlog.last_index < fsm.applied_index:
                log.warning("log ends at %d before the snapshot at %d; restarting it", dlog.last_index, fsm.applied_index)
                await dlog.reset(fsm.applied_index + 1)
            elif dlog.first_index > fsm.applied_index + 1:
                raise CorruptLogError(
                    f"log starts at {dlog.first_index} but the newest valid snapshot ends at {fsm.applied_index}"
                )
            lo = fsm.applied_index + 1
            while lo <= dlog.last_index:
                hi = min(dlog.last_index, lo + REPLAY_BATCH - 1)
                for e in dlog.entries(lo, hi):
                    fsm.apply(e.index, decode_command(e.payload))
                    applied_term = e.term
                lo = hi + 1
            hs_path = data_dir / "hard-state"
            hs = await loop.run_in_executor(None, load_hard_state, hs_path)
            term = max(hs.term, dlog.last_term) + 1
            await loop.run_in_executor(None, save_hard_state, hs_path, HardState(term, node_id))
        except BaseException:
            await dlog.close()
            raise
        log.info("metadata node %s: term %d, applied %d (snapshot %s)", node_id, term, fsm.applied_index,
                 meta.index if meta else None)
        return cls(node_id, data_dir, dlog, snapshots, fsm, term, applied_term,
                   meta.index if meta else 0, snapshot_every)

    # --- Replicator ------------------------------------------------------------------------

    async def propose(self, cmd: Command) -> Outcome:
        if self._closed:
            raise ServiceUnavailable("metadata node is shutting down")
        index = self.log.last_index + 1
        fut = asyncio.get_running_loop().create_future()
        try:
            durable = self.log.append([Entry(self.term, index, encode_command(cmd))])
        except LogClosedError as exc:
            raise ServiceUnavailable(f"metadata log unavailable: {exc}") from None
        self._waiting[index] = (cmd, fut)
        # Commit and apply from a callback: it runs even if this proposer is cancelled.
        durable.add_done_callback(lambda f: self._on_durable(index, f))
        return await fut

    async def read(self, fn: Callable[[MetadataFSM], T]) -> T:
        if self._closed:
            raise ServiceUnavailable("metadata node is shutting down")
        return fn(self.fsm)

    def status(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id, "role": "leader", "leader": self.node_id, "term": self.term,
            "commit_index": self.commit_index, "applied_index": self.fsm.applied_index,
            "log_first_index": self.log.first_index, "log_last_index": self.log.last_index,
            "log_bytes": self.log.disk_bytes(), "last_snapshot_index": self.snapshot_index,
            "fsyncs": self.log.fsyncs, "entries_written": self.log.appended,
            **self.fsm.counts(),
        }

    async def close(self) -> None:
        self._closed = True
        if self._snapshot_task is not None:
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
        await self.log.close()
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ServiceUnavailable("metadata node shut down"))
        self._waiting.clear()

    # --- commit and apply ------------------------------------------------------------------

    def _on_durable(self, index: int, durable: asyncio.Future) -> None:
        if durable.cancelled() or durable.exception() is not None:
            err = ServiceUnavailable(f"metadata log write failed: {durable.exception() if not durable.cancelled() else 'cancelled'}")
            waiting = self._waiting.pop(index, None)
            if waiting is not None and not waiting[1].done():
                waiting[1].set_exception(err)
            return
        self.commit_index = max(self.commit_index, index)
        self._apply_committed()

    def _apply_committed(self) -> None:
        """Apply committed entries in index order; start a snapshot when one is due."""
        while self.fsm.applied_index < self.commit_index:
            index = self.fsm.applied_index + 1
            waiting = self._waiting.pop(index, None)
            if waiting is not None:
                cmd, fut = waiting
            else:  # not proposed by this process (cannot happen with one node; Raft followers)
                cmd, fut = decode_command(self.log.entries(index, index)[0].payload), None
            outcome = self.fsm.apply(index, cmd)
            self._applied_term = self.term
            if fut is not None and not fut.done():
                fut.set_result(outcome)
        self._maybe_snapshot()

    def _maybe_snapshot(self) -> None:
        due = self.fsm.applied_index - self.snapshot_index >= self.snapshot_every
        if due and self._snapshot_task is None and not self._closed:
            self._snapshot_task = asyncio.create_task(self._take_snapshot(), name="metadata-snapshot")

    async def _take_snapshot(self) -> None:
        index, term = self.fsm.applied_index, self._applied_term
        try:
            # Freeze on the loop (fast), encode and write in a thread while applying goes on.
            await self.snapshots.save(index, term, frozen_chunks(freeze(self.fsm)))
            self.snapshot_index = index
            kept = self.snapshots.list()
            if len(kept) > 1:
                await self.log.compact(kept[1].index)
            log.info("snapshot at index %d written; log compacted to %s", index, kept[1].index if len(kept) > 1 else None)
        except Exception:  # noqa: BLE001 - a failed snapshot leaves the log intact; retry later
            log.exception("snapshot at index %d failed", index)
            self.snapshot_index = index  # do not retry on every apply; the next interval will
        finally:
            self._snapshot_task = None
        self._maybe_snapshot()
