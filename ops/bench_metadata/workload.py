"""Closed-loop load for the metadata benchmark, and the records it writes.

:func:`run_closed_loop` runs ``concurrency`` workers on one event loop; each calls
``op(worker, i)`` back to back until the phase's duration has passed (a worker never has
more than one operation in flight, so concurrency is exactly the number of outstanding
requests). Only successful operations contribute latencies; failures are counted and the
first one is kept for the report. Clocks are injected for tests.

:func:`bench_version` is the version record a gateway would commit for a small object:
an HLC version id, an MD5 ETag, three placement nodes out of six, the ring epoch.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from objstore.types import ObjectVersion

NODES = tuple(f"s{i + 1}" for i in range(6))


@dataclass(frozen=True)
class Samples:
    """What one phase measured: per-operation latencies (s), failures, wall and CPU time."""

    latencies: tuple[float, ...]
    errors: int
    first_error: str | None
    elapsed_s: float
    client_cpu_s: float


async def run_closed_loop(
    op: Callable[[int, int], Awaitable[object]], concurrency: int, duration_s: float, *,
    clock: Callable[[], float] = time.perf_counter, cpu_clock: Callable[[], float] = time.process_time,
    max_ops: int | None = None,
) -> Samples:
    """Run ``op`` from ``concurrency`` workers for ``duration_s`` (or until ``max_ops`` in all).

    The phase ends when the last worker's last operation returns; ``elapsed_s`` spans from
    the start to that moment. Raises ValueError for a concurrency below 1.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    started = 0
    t0, cpu0 = clock(), cpu_clock()
    end = t0 + duration_s

    async def worker(w: int) -> None:
        nonlocal errors, first_error, started
        i = 0
        while clock() < end and (max_ops is None or started < max_ops):
            started += 1
            t = clock()
            try:
                await op(w, i)
            except Exception as exc:  # noqa: BLE001 - counted and reported, never fatal to the phase
                errors += 1
                if first_error is None:
                    first_error = f"{type(exc).__name__}: {exc}"
            else:
                latencies.append(clock() - t)
            i += 1

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return Samples(tuple(latencies), errors, first_error, clock() - t0, cpu_clock() - cpu0)


def bench_version(bucket: str, key: str, version_id: str, now: float, owner: str = "bench",
                  size: int = 4096, ordinal: int = 0) -> ObjectVersion:
    """A small object's version record as the gateway commits it (deterministic for tests)."""
    placement = tuple(NODES[(ordinal + j) % len(NODES)] for j in range(3))
    return ObjectVersion(
        bucket=bucket, key=key, version_id=version_id, size=size,
        etag=hashlib.md5(key.encode()).hexdigest(), last_modified=now,
        content_type="application/octet-stream", policy="replica:3", placement=placement,
        ring_epoch=6, owner=owner,
    )


def bench_key(phase: str, worker: int, i: int) -> str:
    """The key worker ``worker`` writes as its ``i``-th object of ``phase``: distinct, sortable."""
    return f"{phase}/w{worker:03d}/{i:09d}"
