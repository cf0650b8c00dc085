"""Group commit: one writer task makes many concurrent small appends durable with one fsync.

Callers ``await submit(record)``; a single task takes everything queued, runs one
``SegmentLog.append_batch`` on a dedicated thread (write, then one fdatasync; a
:class:`~objstore.commit_thread.CommitThread`, or any executor),
and resolves every caller's future with its seq and location. While a batch is being
synced, new submissions queue up and form the next batch, so the batch size grows with
the load and the fsync rate stays bounded. An idle committer woken by a record first lets
the loop run ``GATHER_TICKS`` times, so the rest of the same burst joins that batch.

Invariants:
- A future resolves successfully only after its record is durable; if the batch fails,
  every record of it fails with the same error and none of them is on disk. Records
  submitted together (``submit_many``) may span batches (the bounds of one batch), so each
  is answered with its own batch's outcome.
- ``on_commit`` runs on the loop for every durable record before its caller resumes, even
  if the caller was cancelled meanwhile, so the live index never misses a durable record.
- ``close()`` refuses new submissions, then waits until everything queued is committed.
- A committer task that ends otherwise (cancelled) fails what is still queued with
  ServiceUnavailable, and later submissions are refused the same way: no caller waits for
  a committer that is gone. A failing ``on_batch`` observer is logged, never fatal.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Callable

from objstore.errors import ServiceUnavailable
from objstore.commit_thread import CommitThread
from objstore.node.segments import Appended, PendingRecord, SegmentLog

log = logging.getLogger(__name__)

# Loop iterations an idle committer waits after the first record comes, so that the
# records of the same burst (the blob writes of PUTs a gateway sent together, read from
# the sockets in the next poll or two) go in the same write and fsync. No timer: at most
# a couple of polls of the sockets, microseconds.
GATHER_TICKS = 2


class GroupCommitter:
    def __init__(
        self,
        segments: SegmentLog,
        next_seq: Callable[[], int],
        executor: concurrent.futures.Executor,
        on_commit: Callable[[PendingRecord, Appended], None],
        max_batch_bytes: int = 32 * 1024 * 1024,
        max_batch_records: int = 4096,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._segments = segments
        self._next_seq = next_seq
        self._executor = executor
        self._on_commit = on_commit
        self._max_bytes = max_batch_bytes
        self._max_records = max_batch_records
        self._queue: list[tuple[PendingRecord, asyncio.Future[Appended]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.records = 0
        self._on_batch = on_batch  # (records, seconds of write + fsync) after each durable batch
        self.gather_ticks = GATHER_TICKS

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def submit(self, record: PendingRecord) -> Appended:
        """Append ``record`` durably; raises the batch's OSError, or ServiceUnavailable when closing."""
        if self._closing or self._task is None or self._task.done():
            raise ServiceUnavailable("storage node is shutting down")
        fut: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._queue.append((record, fut))
        self._wakeup.set()
        # Shielded: a caller that goes away must not cancel the durable outcome others share.
        return await asyncio.shield(fut)

    async def submit_many(self, records: list[PendingRecord]) -> list[Appended | BaseException]:
        """Append ``records`` durably (queued together, so they share a batch while they fit
        in one); per record its location once durable, or the error of its batch (those of
        another batch may be durable meanwhile). Raises ServiceUnavailable when closing
        (then none was queued)."""
        if self._closing or self._task is None or self._task.done():
            raise ServiceUnavailable("storage node is shutting down")
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[Appended]] = []
        for record in records:
            fut: asyncio.Future[Appended] = loop.create_future()
            fut.add_done_callback(_retrieve)
            self._queue.append((record, fut))
            futs.append(fut)
        self._wakeup.set()
        return list(await asyncio.shield(asyncio.gather(*futs, return_exceptions=True)))

    def _take_batch(self) -> list[tuple[PendingRecord, asyncio.Future[Appended]]]:
        size = 0
        n = 0
        for n, (rec, _fut) in enumerate(self._queue, 1):
            size += len(rec.body)
            if size >= self._max_bytes or n >= self._max_records:
                break
        batch, self._queue = self._queue[:n], self._queue[n:]
        return batch

    async def _run(self) -> None:
        try:
            await self._commit_queued()
        finally:
            # Ended by cancellation (or a bug): fail what is still queued rather than leave its
            # callers waiting for a committer that is gone.
            queued, self._queue = self._queue, []
            for _, fut in queued:
                if not fut.done():
                    fut.set_exception(ServiceUnavailable("storage node is shutting down"))

    async def _commit_queued(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                for _ in range(self.gather_ticks):  # the rest of this burst joins the batch
                    await asyncio.sleep(0)
                continue
            batch = self._take_batch()
            started = time.perf_counter()
            try:
                records = [r for r, _ in batch]
                if isinstance(self._executor, CommitThread):
                    results = await self._executor.run(self._segments.append_batch, records, self._next_seq)
                else:
                    results = await loop.run_in_executor(
                        self._executor, self._segments.append_batch, records, self._next_seq
                    )
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                if isinstance(exc, asyncio.CancelledError):
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(ServiceUnavailable("storage node is shutting down"))
                    raise
                log.error("group commit of %d records failed: %r", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.records += len(batch)
            if self._on_batch is not None:
                try:
                    self._on_batch(len(batch), time.perf_counter() - started)
                except Exception:  # noqa: BLE001 - the batch is durable whatever its metrics say
                    log.exception("observing a committed batch failed")
            for (rec, fut), res in zip(batch, results):
                try:
                    self._on_commit(rec, res)
                except Exception:  # noqa: BLE001 - the record is durable whatever the index says
                    log.exception("installing a committed record failed")
                if not fut.done():
                    fut.set_result(res)

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None


def _retrieve(fut: asyncio.Future) -> None:
    """Mark an outcome as seen when the caller that waited for it went away."""
    if not fut.cancelled():
        fut.exception()
