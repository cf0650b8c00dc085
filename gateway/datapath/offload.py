"""Per-byte work of a large body (hashing, erasure coding) done off the event loop, in order.

A large PUT's gateway work per byte is receiving the body, hashing it (MD5 for the ETag,
and any other digest the request asked for), coding it (``ec:K+M``) and sending it. The
hashes and the coding release the GIL on large buffers, so on a second core they can run
while the event loop receives and sends. :class:`Sequenced` runs one body's jobs on a
shared worker pool one at a time, in the order they were given (a digest must see the
bytes in order); the loop goes on while a job runs and waits only when it has the next
job ready before the previous one finished (so at most one job per body is in flight,
and the memory a body holds back is bounded by one job's bytes beside the one being
gathered).

Jobs are handed over in batches of ``BATCH`` bytes: the hand-over of every 1 MiB chunk cost
more than it gained on two busy cores (measured; see docs/architecture.md), a hand-over per
4 MiB is a quarter of that. ``OBJSTORE_BODY_WORKERS=0`` in the gateway's environment keeps
all of it on the event loop.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import threading
from typing import Any, Callable

OFFLOAD_SIZE = 8 * 1024 * 1024  # bodies from this size have their per-byte work done on the pool
BATCH = 4 * 1024 * 1024  # body bytes per job handed to the pool
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _workers() -> int:
    """Threads shared by every body in flight: ``OBJSTORE_BODY_WORKERS`` (default 2; a
    2-core machine gains nothing from more; 0 keeps all of a body's work on the event loop)."""
    try:
        return max(0, int(os.environ.get("OBJSTORE_BODY_WORKERS", "2")))
    except ValueError:
        return 2


WORKERS = _workers()


def _hash_depth() -> int:
    """Hashing jobs one body may have outstanding: ``OBJSTORE_HASH_JOBS`` (default 4)."""
    try:
        return max(1, int(os.environ.get("OBJSTORE_HASH_JOBS", "4")))
    except ValueError:
        return 4


HASH_DEPTH = _hash_depth()


def offloaded(size: int) -> bool:
    """Whether a body of ``size`` bytes has its per-byte work done on the pool."""
    return WORKERS > 0 and size >= OFFLOAD_SIZE


def pool() -> concurrent.futures.ThreadPoolExecutor:
    """The gateway's worker pool for per-byte jobs (created on first use)."""
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="bodywork")
    return _pool


class Sequenced:
    """One body's jobs, run on the worker pool one after the other, in submission order.

    Up to ``depth`` jobs may be outstanding (queued or running) before :meth:`submit`
    waits for the oldest: with a depth over one the loop hands a job over and goes on
    receiving while the pool is still busy with earlier ones, instead of stalling until
    the previous job finished. The jobs never run at once: a pool worker takes the
    body's next job only when it finished the one before (one drain per body at a time),
    so a digest still sees the bytes in order. Memory held back is ``depth`` jobs' bytes.
    """

    __slots__ = ("_depth", "_lock", "_queue", "_futures", "_running", "_dropped")

    def __init__(self, depth: int = 1) -> None:
        self._depth = max(1, depth)
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any],
                                             asyncio.AbstractEventLoop]] = collections.deque()
        self._futures: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._running = False
        self._dropped = False

    async def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` behind the body's earlier jobs, once fewer than ``depth``
        are outstanding (waiting here for the oldest, raising its error if it failed);
        returns the new job's future."""
        while len(self._futures) >= self._depth:
            await self._futures.popleft()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._futures.append(fut)
        with self._lock:
            self._queue.append((fn, args, fut, loop))
            start, self._running = not self._running, True
        if start:
            pool().submit(self._drain)
        return fut

    async def wait(self) -> Any:
        """Wait for every job submitted (in order); the last one's result, or the first
        error raised."""
        result = None
        while self._futures:
            result = await self._futures.popleft()
        return result

    def cancel(self) -> None:
        """Forget the outstanding jobs: those not started never run, the one running
        finishes on its own; their results are dropped."""
        with self._lock:
            self._dropped = True
            queued = [job[2] for job in self._queue]
            self._queue.clear()
        for fut in queued:
            fut.cancel()
        while self._futures:
            fut = self._futures.popleft()
            if not fut.done():
                fut.add_done_callback(_consume)
            elif not fut.cancelled():
                fut.exception()

    def _drain(self) -> None:
        """On a pool worker: run the body's queued jobs one by one until none is left."""
        while True:
            with self._lock:
                if not self._queue or self._dropped:
                    self._running = False
                    return
                fn, args, fut, loop = self._queue.popleft()
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting loop
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, fut, result, error)
            except RuntimeError:  # the loop is closed: nobody waits for the rest
                with self._lock:
                    self._dropped = True
            if error is not None:
                with self._lock:  # what was queued behind a failed job is not run
                    self._dropped = True
                    dropped = [job[2] for job in self._queue]
                    self._queue.clear()
                for other in dropped:
                    other.get_loop().call_soon_threadsafe(other.cancel)


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
