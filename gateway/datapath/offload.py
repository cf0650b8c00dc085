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
import concurrent.futures
import os
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
    """One body's jobs, run on the worker pool one after the other, in submission order."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: asyncio.Future[Any] | None = None

    async def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` on the pool once the previous job finished (waited for here,
        raising its error if it failed); returns the new job's future."""
        await self.wait()
        fut = asyncio.get_running_loop().run_in_executor(pool(), fn, *args)
        self._last = fut
        return fut

    async def wait(self) -> Any:
        """Wait for the last job submitted (if any); its result, or its error raised."""
        last, self._last = self._last, None
        if last is None:
            return None
        return await last

    def cancel(self) -> None:
        """Forget the job in flight (it finishes on its own; its result is dropped)."""
        last, self._last = self._last, None
        if last is not None and not last.done():
            last.add_done_callback(_consume)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
