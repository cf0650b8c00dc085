"""GET throughput and latency at each read consistency level, and what each level answers
while the metadata majority is down.

Run: ``.venv/bin/python -m ops.bench_consistency [--duration 5] [--concurrency 16]
[--objects 32] [--json]``. It starts ``objstore up`` (3 metadata nodes, 3 storage nodes,
replica:3) in a temporary data dir, PUTs ``--objects`` objects of 4 KiB and of 1 MiB, then
for each size and each level (``strong``, ``quorum``, ``one``: ``x-objstore-consistency``)
GETs random objects for ``--duration`` seconds at ``--concurrency`` and reports ops/s and
p50/p99 latency. Then it SIGKILLs two of the three metadata nodes, waits past the gateway's
caches, and for each level (and for PUT) makes 20 requests: how many succeeded, the error
codes, and their p50 latency. The cluster is stopped and its data dir removed at the end,
whatever happened. The figures are only as steady as the machine is idle.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from typing import Any

from gateway.auth.sign import SigV4Signer
from ops.bench.s3client import S3Client
from ops.bench_ec_degraded import ACCESS, SECRET, on_own_cluster
from ops.cli.output import table

LEVELS = ("strong", "quorum", "one")
SIZES = {"4KiB": 4096, "1MiB": 1024 * 1024}
BUCKET = "consistency-bench"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def get_phase(client: S3Client, keys: list[str], level: str, duration: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    ends = time.monotonic() + duration
    rng = random.Random(level)

    async def worker() -> None:
        while time.monotonic() < ends:
            began = time.monotonic()
            out = await client.get(BUCKET, rng.choice(keys), headers={"x-objstore-consistency": level})
            if out.status == 200:
                latencies.append(time.monotonic() - began)
            else:
                errors[out.error or str(out.status)] = errors.get(out.error or str(out.status), 0) + 1

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.monotonic() - began
    return {"ops_s": len(latencies) / took, "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000, "errors": errors}


async def probe(client: S3Client, key: str, level: str | None, count: int = 20) -> dict:
    """``count`` GETs at ``level`` (None: PUTs), one at a time: successes, errors, p50."""
    ok, errors, latencies = 0, {}, []
    for i in range(count):
        began = time.monotonic()
        if level is None:
            out = await client.put(BUCKET, f"down-{i}", b"x" * 16, 16)
        else:
            out = await client.get(BUCKET, key, headers={"x-objstore-consistency": level})
        latencies.append(time.monotonic() - began)
        if out.status == 200:
            ok += 1
        else:
            errors[out.error or str(out.status)] = errors.get(out.error or str(out.status), 0) + 1
    return {"ok": ok, "of": count, "errors": errors, "p50_ms": percentile(latencies, 50) * 1000}


async def measure(info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    signer = SigV4Signer(ACCESS, SECRET, "us-east-1")
    figures: dict[str, Any] = {"concurrency": args.concurrency, "duration_s": args.duration, "levels": {},
                               "majority_down": {}}
    async with S3Client(info["endpoint"], signer, connections=args.concurrency + 4) as client:
        await client.create_bucket(BUCKET)
        keys: dict[str, list[str]] = {}
        for name, size in SIZES.items():
            body = os.urandom(size)
            keys[name] = [f"{name}-{i}" for i in range(args.objects)]
            for k in keys[name]:
                out = await client.put(BUCKET, k, body, size)
                if out.status != 200:
                    raise RuntimeError(f"PUT {k}: {out.status} {out.error}")
        for name in SIZES:
            for level in LEVELS:
                await get_phase(client, keys[name], level, 0.5, args.concurrency)  # warm up, untimed
                figures["levels"][f"{name} {level}"] = await get_phase(client, keys[name], level, args.duration,
                                                                       args.concurrency)
        for m in [p for p in info["processes"] if p["role"] == "metadata"][:2]:
            os.kill(m["pid"], signal.SIGKILL)
        await asyncio.sleep(6.0)  # past the gateway's 5 s credential and 2 s bucket caches
        for level in LEVELS:
            figures["majority_down"][f"GET {level}"] = await probe(client, keys["4KiB"][0], level)
        figures["majority_down"]["PUT"] = await probe(client, "", None)
    return figures


def render(f: dict[str, Any]) -> str:
    rows = [("SIZE LEVEL", "GET OPS/S", "P50 MS", "P99 MS", "ERRORS")]
    rows += [(k, f"{v['ops_s']:.0f}", f"{v['p50_ms']:.1f}", f"{v['p99_ms']:.1f}", str(sum(v["errors"].values())))
             for k, v in f["levels"].items()]
    down = [("WITH 2 OF 3 METADATA NODES KILLED", "SUCCEEDED", "ERRORS", "P50 MS")]
    down += [(k, f"{v['ok']}/{v['of']}", json.dumps(v["errors"]) if v["errors"] else "-", f"{v['p50_ms']:.1f}")
             for k, v in f["majority_down"].items()]
    return (f"concurrency {f['concurrency']}, {f['duration_s']:g} s per phase\n" + table(rows) + "\n\n"
            + table(down))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_consistency", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--objects", type=int, default=32)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    figures = on_own_cluster("bench-consistency-", 3, ("--metadata-nodes", "3", "--default-policy", "replica:3"),
                             lambda info, _data_dir: asyncio.run(measure(info, args)))
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
