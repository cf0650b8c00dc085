"""Scrub benchmark: how fast one node verifies its blobs, what it costs the event loop and
foreground reads.

    python -m ops.bench_scrub [--mb 256] [--small-share 0.5] [--rate 0] [--json]

Fills a temporary store (``--mb`` MB: ``--small-share`` of it in 4 KiB segment records, the
rest in 4 MiB blob files; the page cache is warm, so this measures CPU, not the disk),
then runs one scrub pass at ``--rate`` MB/s (0: unpaced) while a ticker measures the event
loop's lag and a reader keeps reading random small blobs. Prints the pass's MB/s and CPU
seconds, the loop's worst and p99 lag and the foreground read p50/p99, idle and during the
pass. Measured figures: docs/architecture.md, "Scrubbing".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from typing import AsyncIterator, Callable

from objstore.node.blob import BlobId
from objstore.node.scrub import MB, Scrubber
from objstore.node.store import BlobStore, StoreOptions

SMALL, LARGE = 4096, 4 * 1024 * 1024


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def fill(store: BlobStore, total: int, small_share: float) -> list[BlobId]:
    small_ids = []
    n_small = int(total * small_share) // SMALL
    for i in range(0, n_small, 256):
        batch = [BlobId(f"s{j}", 0) for j in range(i, min(i + 256, n_small))]
        await asyncio.gather(*(store.put(b, "bench", b.version_id, "replica:3", SMALL, _one(os.urandom(SMALL)))
                               for b in batch))
        small_ids += batch
    for j in range(int(total * (1 - small_share)) // LARGE):
        await store.put(BlobId(f"l{j}", 0), "bench", f"l{j}", "replica:3", LARGE, _one(os.urandom(LARGE)))
    return small_ids


async def reads(store: BlobStore, ids: list[BlobId], done: Callable[[], bool], rng: random.Random) -> list[float]:
    """Latencies of reads of random small blobs, one every 2 ms, until ``done()``."""
    out: list[float] = []
    while ids and not done():
        t = time.perf_counter()
        async with await store.open_read(rng.choice(ids)) as r:
            await r.read_all()
        out.append(time.perf_counter() - t)
        await asyncio.sleep(0.002)
    return out


async def loop_lag(stop: asyncio.Event, tick: float = 0.001) -> list[float]:
    lags = []
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(tick)
        lags.append(time.perf_counter() - t - tick)
    return lags


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


async def run(mb: int, small_share: float, rate: float) -> dict:
    with tempfile.TemporaryDirectory() as d:
        store = BlobStore(d, StoreOptions())
        await store.open()
        try:
            ids = await fill(store, mb * MB, small_share)
            rng = random.Random(1)
            idle_end = time.perf_counter() + 2.0
            idle_stop = asyncio.Event()
            idle_lag_task = asyncio.ensure_future(loop_lag(idle_stop))
            idle = await reads(store, ids, lambda: time.perf_counter() > idle_end, rng)
            idle_stop.set()
            idle_lags = await idle_lag_task
            scrub = Scrubber(store, "bench", rate=(rate or 1e6) * MB)
            stop = asyncio.Event()
            lag_task = asyncio.ensure_future(loop_lag(stop))
            fg_task = asyncio.ensure_future(reads(store, ids, stop.is_set, rng))
            cpu0, t0 = time.process_time(), time.perf_counter()
            p = await scrub.run_pass()
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            stop.set()
            lags, during = await lag_task, await fg_task
            await scrub.close()
            return {
                "bytes": p.bytes_total, "blobs": p.blobs_total, "seconds": round(wall, 2),
                "mb_per_s": round(p.bytes_total / MB / wall, 1), "cpu_seconds": round(cpu, 2),
                "loop_lag_ms_idle": {"p99": round(pct(idle_lags, 0.99) * 1000, 2),
                                     "max": round(max(idle_lags, default=0) * 1000, 2)},
                "loop_lag_ms": {"p99": round(pct(lags, 0.99) * 1000, 2), "max": round(max(lags, default=0) * 1000, 2)},
                "read_ms_idle": {"p50": round(statistics.median(idle) * 1000, 3) if idle else None,
                                 "p99": round(pct(idle, 0.99) * 1000, 3)},
                "read_ms_during": {"p50": round(statistics.median(during) * 1000, 3) if during else None,
                                   "p99": round(pct(during, 0.99) * 1000, 3)},
            }
        finally:
            await store.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench_scrub", description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=int, default=256)
    p.add_argument("--small-share", type=float, default=0.5)
    p.add_argument("--rate", type=float, default=0.0, help="MB/s (0: unpaced)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    result = asyncio.run(run(a.mb, a.small_share, a.rate))
    print(json.dumps(result, indent=None if a.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
