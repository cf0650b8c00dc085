"""ec:4+2 against replica:3 large PUTs, interleaved batch by batch on a cluster of its own.

Run: ``.venv/bin/python -m ops.bench_ec_put [--size 64MiB] [--rounds 6] [--concurrency 1 2]
[--json]``. It starts ``objstore up`` (six storage nodes) in a temporary data dir, creates
one bucket per policy and, for each concurrency C, runs ``--rounds`` rounds; a round PUTs C
objects at once into each bucket in turn (the order alternating from round to round), so
both policies see the same load on a shared machine. Per policy and C it reports the
median seconds per batch, MB/s (10^6 bytes) from that median, and the gateway's, the
storage nodes' and this process's (the client sending the bodies, on the same cores) CPU
seconds per object (medians); then the ec rate over the replica rate.
The CPU the cluster spends idle over a few seconds before the rounds, and the load average
at the start and the end, are reported beside them. The cluster is stopped and its data
dir removed at the end, whatever happened.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from gateway.auth.sign import SigV4Signer
from ops.bench.monitor import process_cpu
from ops.bench.s3client import S3Client
from ops.bench.settings import parse_size
from ops.bench_ec_degraded import ACCESS, SECRET, start_cluster, stop_cluster
from ops.cli.output import table

IDLE_S = 5.0
POLICIES = {"ec:4+2": "bench-ec-put-ec", "replica:3": "bench-ec-put-rep"}
Sample = tuple[float, float, float, float]
"""One batch: its seconds, and the gateway's, the storage nodes' and the client's CPU seconds per object."""


def _own_cpu() -> float:
    return time.process_time()  # to the nanosecond; os.times() counts 10 ms ticks


def _cpu(procs: list[psutil.Process]) -> float:
    """The CPU seconds of ``procs`` so far, to the nanosecond where the system allows
    (:func:`ops.bench.monitor.process_cpu`): ticks of 10 ms would make a 64 MiB object's
    figures good to about 5 ms only."""
    return sum(process_cpu(p.pid) for p in procs)


async def _batch(client: S3Client, bucket: str, body: bytes, count: int, tag: str) -> None:
    outs = await asyncio.gather(*(client.put(bucket, f"{tag}-{i}", body, len(body)) for i in range(count)))
    bad = [o for o in outs if o.status != 200]
    if bad:
        raise RuntimeError(f"PUT into {bucket} failed: {bad[0]}")


async def measure(info: dict[str, Any], size: int, rounds: int, concurrency: list[int]) -> dict[str, Any]:
    load_start = os.getloadavg()
    procs: dict[str, list[psutil.Process]] = {p["role"]: [] for p in info["processes"]}
    for p in info["processes"]:
        procs[p["role"]].append(psutil.Process(p["pid"]))
    gateway, storage = procs["gateway"], procs.get("storage", [])
    body = os.urandom(size)
    signer = SigV4Signer(ACCESS, SECRET, "us-east-1")
    samples: dict[tuple[str, int], list[Sample]] = {}
    g0, s0, t0 = _cpu(gateway), _cpu(storage), time.perf_counter()
    await asyncio.sleep(IDLE_S)  # what the cluster spends doing nothing (heartbeats, polls)
    idle = {"gateway_cpu_per_s": (_cpu(gateway) - g0) / (time.perf_counter() - t0),
            "storage_cpu_per_s": (_cpu(storage) - s0) / (time.perf_counter() - t0)}
    async with S3Client(info["endpoint"], signer, connections=8) as client:
        for policy, bucket in POLICIES.items():
            await client.create_bucket(bucket, policy)
            await _batch(client, bucket, body, 1, "warm")  # untimed: connections, caches
        for c in concurrency:
            for r in range(rounds):
                order = list(POLICIES.items()) if r % 2 == 0 else list(POLICIES.items())[::-1]
                for policy, bucket in order:
                    g0, s0, c0, t0 = _cpu(gateway), _cpu(storage), _own_cpu(), time.perf_counter()
                    await _batch(client, bucket, body, c, f"c{c}-r{r}")
                    t1 = time.perf_counter()
                    samples.setdefault((policy, c), []).append(
                        (t1 - t0, (_cpu(gateway) - g0) / c, (_cpu(storage) - s0) / c, (_own_cpu() - c0) / c))
    return {"size": size, "rounds": rounds, "load_start": load_start, "load": os.getloadavg(), "idle": idle,
            "runs": summarize(samples, size, concurrency)}


def summarize(samples: dict[tuple[str, int], list[Sample]], size: int, concurrency: list[int]) -> list[dict[str, Any]]:
    """Per concurrency, each policy's medians and MB/s (from the median batch time), and
    ``ratio``: the ec:4+2 rate over the replica:3 rate."""
    runs = []
    for c in concurrency:
        row: dict[str, Any] = {"concurrency": c}
        for policy in POLICIES:
            s = samples[(policy, c)]
            secs = statistics.median(x[0] for x in s)
            row[policy] = {"median_s": secs, "mb_s": c * size / secs / 1e6,
                           "gateway_cpu_s": statistics.median(x[1] for x in s),
                           "storage_cpu_s": statistics.median(x[2] for x in s),
                           "client_cpu_s": statistics.median(x[3] for x in s), "seconds": [x[0] for x in s]}
        row["ratio"] = row["ec:4+2"]["mb_s"] / row["replica:3"]["mb_s"]
        runs.append(row)
    return runs


def render(f: dict[str, Any]) -> str:
    rows = [("C", "POLICY", "MEDIAN s", "MB/s", "GW CPU s/obj", "NODES CPU s/obj", "CLIENT CPU s/obj", "EC/REPLICA")]
    for run in f["runs"]:
        for policy in POLICIES:
            p = run[policy]
            rows.append((str(run["concurrency"]), policy, f"{p['median_s']:.3f}", f"{p['mb_s']:.1f}",
                         f"{p['gateway_cpu_s']:.3f}", f"{p['storage_cpu_s']:.3f}", f"{p.get('client_cpu_s', 0.0):.3f}",
                         f"{run['ratio']:.2f}x" if policy == "ec:4+2" else ""))
    load = ", ".join(f"{x:.1f}" for x in f["load"])
    start = ", ".join(f"{x:.1f}" for x in f.get("load_start", ()))
    idle = f["idle"]
    return (f"{f['rounds']} rounds of {f['size']}-byte PUTs per policy and concurrency; "
            f"load at the start {start}, at the end {load}; "
            f"idle CPU s/s: gateway {idle['gateway_cpu_per_s']:.3f}, storage nodes {idle['storage_cpu_per_s']:.3f} "
            "(included in the per-object figures)\n" + table(rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench_ec_put", description=__doc__.split("\n")[0])
    p.add_argument("--size", default="64MiB")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="objstore-bench-ec-put-"))
    proc = None
    try:
        proc, info = start_cluster(tmp / "data", 6)
        figures = asyncio.run(measure(info, parse_size(args.size), args.rounds, args.concurrency))
    finally:
        if proc is not None:
            stop_cluster(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
