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


class _Many:
    """The callers' side of records submitted together (:meth:`GroupCommitter.submit_many`):
    one future, resolved once every record has its outcome (no future per record)."""

    __slots__ = ("fut", "outcomes", "left")

    def __init__(self, fut: "asyncio.Future[list[Appended | BaseException]]", n: int) -> None:
        self.fut = fut
        self.outcomes: list[Appended | BaseException | None] = [None] * n
        self.left = n

    def settle(self, i: int, outcome: "Appended | BaseException") -> None:
        self.outcomes[i] = outcome
        self.left -= 1
        if not self.left and not self.fut.done():
            self.fut.set_result(self.outcomes)  # type: ignore[arg-type]


# A queued record: (record, its caller's future, or the _Many it belongs to and its place there).
_Queued = tuple[PendingRecord, "asyncio.Future[Appended] | _Many", int]


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
        self._queue: list[_Queued] = []
        self._idle: asyncio.Future[None] | None = None  # the committer waits on it for a record
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        self.records = 0
        self._on_batch = on_batch  # (records, seconds of write + fsync) after each durable batch
        self.gather_ticks = GATHER_TICKS

    def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="group-commit")

    def _wake(self) -> None:
        idle = self._idle
        if idle is not None and not idle.done():
            idle.set_result(None)

    def _check_open(self) -> asyncio.AbstractEventLoop:
        if self._closing or self._task is None or self._task.done():
            raise ServiceUnavailable("storage node is shutting down")
        assert self._loop is not None
        return self._loop

    async def submit(self, record: PendingRecord) -> Appended:
        """Append ``record`` durably; raises the batch's OSError, or ServiceUnavailable when closing."""
        fut: asyncio.Future[Appended] = self._check_open().create_future()
        self._queue.append((record, fut, 0))
        self._wake()
        # A caller that goes away cancels its own future only: the record still commits
        # (and is indexed), and the committer skips a future already done.
        try:
            return await fut
        finally:
            if fut.done() and not fut.cancelled():
                fut.exception()  # seen, even when this caller was cancelled meanwhile

    async def submit_many(self, records: list[PendingRecord]) -> list[Appended | BaseException]:
        """Append ``records`` durably (queued together, so they share a batch while they fit
        in one); per record its location once durable, or the error of its batch (those of
        another batch may be durable meanwhile). Raises ServiceUnavailable when closing
        (then none was queued)."""
        loop = self._check_open()
        if not records:
            return []
        many = _Many(loop.create_future(), len(records))
        self._queue.extend((record, many, i) for i, record in enumerate(records))
        self._wake()
        return await many.fut

    def _take_batch(self) -> list[_Queued]:
        size = 0
        n = 0
        for n, item in enumerate(self._queue, 1):
            size += len(item[0].body)
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
            _fail(queued, lambda: ServiceUnavailable("storage node is shutting down"))

    async def _commit_queued(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._idle = loop.create_future()
                try:
                    await self._idle
                finally:
                    self._idle = None
                for _ in range(self.gather_ticks):  # the rest of this burst joins the batch
                    await asyncio.sleep(0)
                continue
            batch = self._take_batch()
            started = time.perf_counter()
            try:
                records = [item[0] for item in batch]
                if isinstance(self._executor, CommitThread):
                    results = await self._executor.run(self._segments.append_batch, records, self._next_seq)
                else:
                    results = await loop.run_in_executor(
                        self._executor, self._segments.append_batch, records, self._next_seq
                    )
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                if isinstance(exc, asyncio.CancelledError):
                    _fail(batch, lambda: ServiceUnavailable("storage node is shutting down"))
                    raise
                log.error("group commit of %d records failed: %r", len(batch), exc)
                failure = exc
                _fail(batch, lambda: failure)
                continue
            self.batches += 1
            self.records += len(batch)
            if self._on_batch is not None:
                try:
                    self._on_batch(len(batch), time.perf_counter() - started)
                except Exception:  # noqa: BLE001 - the batch is durable whatever its metrics say
                    log.exception("observing a committed batch failed")
            on_commit = self._on_commit
            for (rec, waiter, i), res in zip(batch, results):
                try:
                    on_commit(rec, res)
                except Exception:  # noqa: BLE001 - the record is durable whatever the index says
                    log.exception("installing a committed record failed")
                if type(waiter) is _Many:
                    waiter.settle(i, res)
                elif not waiter.done():  # type: ignore[union-attr]
                    waiter.set_result(res)  # type: ignore[union-attr]

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        self._closing = True
        self._wake()
        if self._task is not None:
            await self._task
            self._task = None


def _fail(items: list[_Queued], error: Callable[[], BaseException]) -> None:
    """Fail every caller of ``items`` (with ``error()``) that is still waiting."""
    for _, waiter, i in items:
        if type(waiter) is _Many:
            waiter.settle(i, error())
        elif not waiter.done():  # type: ignore[union-attr]
            waiter.set_exception(error())  # type: ignore[union-attr]
