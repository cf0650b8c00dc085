"""CPU per commit of two metadata builds side by side, on one loaded machine.

Starts a 3-member group from each of two checkouts (their own Python, so their own code),
then in rounds loads one group and then the other with one client writing small version
records for ``--seconds`` each, and reports each member's CPU-µs per write, with the CPU
the same member spent meanwhile while the other group was loaded (its idle work: ticks,
heartbeats) subtracted per second:

    python -m ops.ab_metadata_cpu --a /path/to/a/.venv/bin/python --a-dir /path/to/a \\
        --b /path/to/b/.venv/bin/python --b-dir /path/to/b --rounds 6 --seconds 4
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from objstore.hlc import HLC
from ops.bench.monitor import process_cpu
from ops.bench_metadata.spawn import MetadataNodes
from ops.bench_metadata.systems import ObjstoreSystem
from ops.bench_metadata.workload import bench_key, bench_version


async def _writes(system: ObjstoreSystem, bucket: str, hlc: HLC, seconds: float, start: int) -> int:
    end, i = time.monotonic() + seconds, start
    while time.monotonic() < end:
        key = bench_key("p", 0, i)
        await system.write(key, bench_version(bucket, key, hlc.next(), time.time(), owner="bench-metadata", ordinal=i))
        i += 1
    return i - start


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for side in ("a", "b"):
        ap.add_argument(f"--{side}", required=True, help="python of checkout " + side)
        ap.add_argument(f"--{side}-dir", required=True, help="checkout " + side)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="metadata-ab-") as tmp:
        groups, systems, buckets = {}, {}, {}
        secret = uuid.uuid4().hex  # one for both: the client side keeps one per process
        cwd = os.getcwd()
        try:
            for side in ("a", "b"):
                os.chdir(getattr(args, f"{side}_dir"))  # children import the checkout's code
                g = MetadataNodes(3, Path(tmp) / side, secret=secret, python=getattr(args, side))
                g.start()
                groups[side] = g
            os.chdir(cwd)
            for side, g in groups.items():
                await g.wait_ready()
                systems[side] = ObjstoreSystem("objstore", g.addresses, g.secret)
                buckets[side] = f"ab-{uuid.uuid4().hex[:8]}"
                await systems[side].setup(buckets[side])
            hlc = HLC("ab")
            counts = {s: 0 for s in groups}
            res: dict[str, list[tuple[float, float, float]]] = {s: [] for s in groups}
            for _ in range(args.rounds):
                for side in ("a", "b"):
                    other = "b" if side == "a" else "a"
                    pids = {s: groups[s].pids for s in groups}
                    c0 = {p: process_cpu(p) for s in pids for p in pids[s]}
                    t0 = time.monotonic()
                    n = await _writes(systems[side], buckets[side], hlc, args.seconds, counts[side])
                    dt = time.monotonic() - t0
                    counts[side] += n
                    cpu = {p: process_cpu(p) - c0[p] for s in pids for p in pids[s]}
                    idle_rate = sum(cpu[p] for p in pids[other]) / 3 / dt  # a member's idle CPU/s
                    per = sorted((cpu[p] / n * 1e6 for p in pids[side]), reverse=True)
                    idle_us = idle_rate * dt / n * 1e6
                    res[side].append((per[0], per[1], per[2], idle_us, n / dt, os.getloadavg()[0]))
                    print(f"{side}: {n} writes, {n / dt:.0f}/s; CPU-µs/write busiest {per[0]:,.0f}, others "
                          f"{per[1]:,.0f} {per[2]:,.0f}; idle share {idle_us:,.0f}; load {os.getloadavg()[0]:.1f}",
                          flush=True)
            for side in ("a", "b"):
                r = res[side]
                med = [statistics.median(x[k] for x in r) for k in range(4)]
                print(f"{side} median: busiest {med[0]:,.0f}, others {med[1]:,.0f} {med[2]:,.0f} "
                      f"(idle share {med[3]:,.0f}) CPU-µs/write; net busiest {med[0] - med[3]:,.0f}, others "
                      f"{med[1] - med[3]:,.0f}")
        finally:
            os.chdir(cwd)
            for s in systems.values():
                await s.close()
            for g in groups.values():
                g.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
