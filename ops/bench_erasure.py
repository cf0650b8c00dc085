"""Benchmark zfec stripe coding against md5, per core and in two threads.

Run: ``.venv/bin/python -m ops.bench_erasure [--layouts 4+2,6+3] [--stripes 256K,1M,4M]
[--seconds 0.5]``. For each layout (K+M) and nominal stripe size it prints, in MB of
object bytes (10^6) per CPU second of this process (so a busy, shared machine slows the
run but changes the figures little):
- ``encode``: ``encode_stripe`` (split into K shards + M parity shards), one thread;
- ``decode``: ``decode_stripe`` with the first M data shards lost (the worst case: M data
  shards rebuilt), one thread;
- ``md5``: hashlib.md5 of the same stripe bytes (what a PUT already spends per byte);
- ``x2 wall``: wall-clock speed-up of encoding 4 stripes in a ThreadPoolExecutor of 2
  over encoding them inline, and ``x2 cpu``: CPU seconds per wall second while the pool
  runs (above 1 means the two threads really ran at once). Both need two idle cores.
First it checks whether zfec releases the GIL: a Python thread keeps ticking while one
long encode (and decode) call runs in another thread; its longest stall is printed.

Figures measured while writing this (zfec 1.6.0.0, 2 shared cores, load ~5), MB per CPU
second, the same at 256 KiB, 1 MiB and 4 MiB stripes within noise:
- encode: 2+1 ~1600-2200, 4+2 ~770-1020, 6+3 ~600-640, 8+4 ~480-510; decode with M data
  shards lost about the same. Cost per object byte grows with M (each parity byte sums K
  data bytes: M x stripe multiply-adds per stripe). md5 is ~750 everywhere, so 4+2 coding
  costs about what the PUT's md5 already does.
- The GIL is released inside zfec: a 16 MiB-shard encode of ~300-400 ms stalled another
  Python thread at most ~30 ms (the Python-side join and copies), decode ~20 ms. The
  thread-pool speed-up could not be shown on the loaded machine (CPU/wall stayed ~1: no
  second free core). Measured on the PUT path itself (64 MiB ec:4+2 PUTs), encoding in a
  worker thread was slower than inline on two busy cores, so the gateway encodes inline.
- Stripe size: 1 MiB recommended. Throughput is flat from 256 KiB to 1 MiB and drops a
  little at 4 MiB for 4+2 (shards of 1 MiB x 6 leave the cache); 1 MiB gives 4+2 shards of
  256 KiB (four 64 KiB checksum blocks per node per stripe), ~1.5 MiB buffered per
  in-flight stripe, and fewer, larger shard writes than 256 KiB (where K = 3 or K >= 5 rounds
  each shard up to whole 64 KiB blocks and the stripe grows past the nominal size).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import zfec

from objstore.erasure import StripeLayout, decode_stripe, encode_stripe

UNITS = {"K": 1 << 10, "M": 1 << 20}


def parse_size(text: str) -> int:
    unit = UNITS.get(text[-1].upper(), 1)
    return int(text[:-1] if text[-1].upper() in UNITS else text) * unit


def rate(fn: Callable[[], int], seconds: float, clock: Callable[[], float] = time.process_time) -> float:
    """MB per second of ``clock`` for ``fn`` (which returns the bytes it processed)."""
    fn()  # warm up: zfec tables, caches
    done, start = 0, clock()
    while (elapsed := clock() - start) < seconds or done == 0:
        done += fn()
    return done / elapsed / 1e6


def gil_check(k: int = 4, m: int = 2, width: int = 16 << 20) -> str:
    """How long a ticking Python thread stalls during one long zfec encode and decode."""
    blocks = [os.urandom(width) for _ in range(k)]
    shards = encode_stripe(b"".join(blocks), k, m)
    survivors = {i: shards[i] for i in range(m, k + m)}
    gaps: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    out = []
    try:
        for name, fn in [("encode", lambda: encode_stripe(b"".join(blocks), k, m)),
                         ("decode", lambda: decode_stripe(survivors, k, m))]:
            time.sleep(0.05)
            gaps.clear()
            start = time.perf_counter()
            fn()
            took = time.perf_counter() - start
            out.append(f"{name} call {took * 1000:.0f} ms, longest stall {max(gaps) * 1000:.0f} ms")
    finally:
        stop.set()
        thread.join()
    return "; ".join(out)


def bench(layout: StripeLayout, seconds: float, pool: ThreadPoolExecutor) -> dict[str, float]:
    stripe = os.urandom(layout.stripe_bytes)
    k, m = layout.k, layout.m
    shards = encode_stripe(stripe, k, m)
    survivors = {i: shards[i] for i in range(m, k + m)}  # the first M data shards lost
    assert decode_stripe(survivors, k, m) == stripe
    batch = [os.urandom(layout.stripe_bytes) for _ in range(4)]

    def encode() -> int:
        encode_stripe(stripe, k, m)
        return len(stripe)

    def decode() -> int:
        decode_stripe(survivors, k, m)
        return len(stripe)

    def md5() -> int:
        hashlib.md5(stripe).digest()
        return len(stripe)

    def inline_batch() -> int:
        for s in batch:
            encode_stripe(s, k, m)
        return len(batch) * len(stripe)

    def threaded_batch() -> int:
        list(pool.map(lambda s: encode_stripe(s, k, m), batch))
        return len(batch) * len(stripe)

    out = {"encode": rate(encode, seconds), "decode": rate(decode, seconds), "md5": rate(md5, seconds)}
    inline = rate(inline_batch, seconds, time.perf_counter)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    threaded = rate(threaded_batch, seconds, time.perf_counter)
    out["x2 cpu"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    out["x2 wall"] = threaded / inline
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ops.bench_erasure", description=__doc__.split("\n")[0])
    ap.add_argument("--layouts", default="2+1,4+2,6+3,8+4")
    ap.add_argument("--stripes", default="256K,1M,4M")
    ap.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = ap.parse_args(argv)
    print(f"zfec {zfec.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"GIL check (a Python thread ticking every 1 ms): {gil_check()}")
    print(f"{'layout':>6} {'stripe':>7} {'shard':>7} {'encode':>8} {'decode':>8} {'md5':>8} "
          f"{'x2 wall':>8} {'x2 cpu':>7}   (MB of object bytes per CPU second)")
    with ThreadPoolExecutor(2) as pool:
        for text in args.layouts.split(","):
            k, m = (int(x) for x in text.split("+"))
            for stripe in args.stripes.split(","):
                layout = StripeLayout(k, m, parse_size(stripe))
                r = bench(layout, args.seconds, pool)
                print(f"{text:>6} {stripe:>7} {layout.shard_size // 1024:>6}K {r['encode']:8.0f} "
                      f"{r['decode']:8.0f} {r['md5']:8.0f} {r['x2 wall']:8.2f} {r['x2 cpu']:7.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
