"""CPU per small GET in each process of a local cluster (``objstore up``).

    python -m ops.bench_get_path --data-dir DIR [--data-dir DIR2 ...] [--requests 3000]
        [--concurrency 16] [--objects 256] [--size 4096] [--rounds 3] [--idle 4]

For each data dir (a running cluster), in turn and interleaved over ``--rounds``: PUT
``--objects`` objects once into a bucket of its own, then per round read the CPU time of
every process from ``/proc/<pid>/stat`` (user + system, all threads) for ``--idle``
seconds with no load (the idle rate), then around ``--requests`` GETs of those objects at
``--concurrency``; print CPU-µs per GET per role (gateway, metadata leader, the followers
summed, the storage nodes summed), gross and net of the idle rate, and the Raft message
calls the followers served per GET (their ``/metrics``). The leader is found by ``objstore
status``. Several data dirs make an A/B run: the rows of one round are taken one after
the other, so the machine's load falls on both alike.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gateway.auth.sign import SigV4Signer
from ops.bench.monitor import process_cpu
from ops.bench.s3client import S3Client

_RAFT_RE = re.compile(r'^objstore_requests_total\{op="raft_messages"[^}]*\} ([0-9.e+]+)$', re.M)
_OPS_RE = re.compile(r'^objstore_requests_total\{op="([^"]+)"[^}]*\} ([0-9.e+]+)$', re.M)


class Cluster:
    def __init__(self, data_dir: str) -> None:
        self.dir = Path(data_dir)
        info = json.loads((self.dir / "cluster.json").read_text())
        creds = json.loads((self.dir / "credentials.json").read_text())
        self.endpoint = info["endpoint"]
        self.signer = SigV4Signer(creds["access_key"], creds["secret_key"], info.get("region", "us-east-1"))
        self.procs = [(p["role"], p["id"], p["pid"], p["address"]) for p in info["processes"]]
        self.bucket = f"getpath-{random.getrandbits(32):08x}"
        self.keys: list[str] = []

    def roles(self) -> dict[str, str]:
        out = subprocess.run([sys.executable, "-m", "ops.cli", "status", "--data-dir", str(self.dir), "--json"],
                             capture_output=True, text=True, timeout=60)
        leader = json.loads(out.stdout)["metadata"]["leader"]
        roles = {}
        for role, node_id, _, _ in self.procs:
            if role == "metadata":
                roles[node_id] = "leader" if node_id == leader else "followers"
            elif role == "storage":
                roles[node_id] = "storage"
            else:
                roles[node_id] = "gateway"
        return roles

    def cpu(self) -> dict[str, float]:
        return {node_id: process_cpu(pid) for _, node_id, pid, _ in self.procs}

    def leader_calls(self, leader: str) -> dict[str, float]:
        """The leader's served calls so far, per op (its ``/metrics``)."""
        out: dict[str, float] = {}
        for _, node_id, _, address in self.procs:
            if node_id == leader:
                text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
                for op, n in _OPS_RE.findall(text):
                    out[op] = out.get(op, 0.0) + float(n)
        return out

    def raft_calls(self, followers: list[str]) -> float:
        total = 0.0
        for _, node_id, _, address in self.procs:
            if node_id in followers:
                text = urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode()
                total += sum(float(x) for x in _RAFT_RE.findall(text))
        return total


async def populate(c: Cluster, n: int, size: int) -> None:
    async with S3Client(c.endpoint, c.signer, connections=16) as s3:
        await s3.create_bucket(c.bucket)
        body = os.urandom(size)
        c.keys = [f"k{i:05d}" for i in range(n)]
        for i in range(0, n, 16):
            outs = await asyncio.gather(*(s3.put(c.bucket, k, body, size) for k in c.keys[i:i + 16]))
            bad = [o.error for o in outs if o.error]
            if bad:
                raise SystemExit(f"PUT failed: {bad[:3]}")


async def gets(c: Cluster, requests: int, concurrency: int) -> tuple[float, int]:
    errors = 0
    counter = iter(range(min(requests, 64)))

    async def worker(s3: S3Client) -> None:
        nonlocal errors
        for i in counter:
            o = await s3.get(c.bucket, c.keys[(i * 7919) % len(c.keys)])
            if o.error:
                errors += 1

    async with S3Client(c.endpoint, c.signer, connections=concurrency) as s3:
        await asyncio.gather(*(worker(s3) for _ in range(concurrency)))  # warm the connections
        counter = iter(range(requests))
        errors = 0
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s3) for _ in range(concurrency)))
        return time.perf_counter() - t0, errors


def one_round(c: Cluster, requests: int, concurrency: int, idle: float) -> dict[str, float]:
    roles = c.roles()
    followers = [n for n, r in roles.items() if r == "followers"]
    a = c.cpu()
    t0 = time.perf_counter()
    time.sleep(idle)
    b = c.cpu()
    idle_s = time.perf_counter() - t0
    leader = next(n for n, r in roles.items() if r == "leader")
    r0, l0 = c.raft_calls(followers), c.leader_calls(leader)
    b = c.cpu()
    wall, errors = asyncio.run(gets(c, requests, concurrency))
    e = c.cpu()
    r1, l1 = c.raft_calls(followers), c.leader_calls(leader)
    calls = {op: (n - l0.get(op, 0.0)) / requests for op, n in l1.items()}
    print(json.dumps({"leader calls per GET": {op: round(x, 3) for op, x in calls.items() if x >= 0.005}}),
          flush=True)
    out: dict[str, float] = {"ops/s": requests / wall, "errors": errors,
                             "raft calls to followers per GET": (r1 - r0) / requests}
    for role in ("gateway", "leader", "followers", "storage"):
        ids = [n for n, r in roles.items() if r == role]
        gross = sum(e[n] - b[n] for n in ids)
        idle_rate = sum(b[n] - a[n] for n in ids) / idle_s
        out[role] = gross / requests * 1e6
        out[role + " net"] = (gross - idle_rate * wall) / requests * 1e6
    out["total"] = sum(out[r] for r in ("gateway", "leader", "followers", "storage"))
    out["total net"] = sum(out[r + " net"] for r in ("gateway", "leader", "followers", "storage"))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", action="append", required=True)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--objects", type=int, default=256)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=float, default=4.0)
    args = ap.parse_args(argv)
    clusters = [Cluster(d) for d in args.data_dir]
    for c in clusters:
        asyncio.run(populate(c, args.objects, args.size))
    results: dict[str, list[dict[str, float]]] = {d: [] for d in args.data_dir}
    for rnd in range(args.rounds):
        order = clusters if rnd % 2 == 0 else clusters[::-1]
        for c in order:
            r = one_round(c, args.requests, args.concurrency, args.idle)
            r["load"] = os.getloadavg()[0]
            results[str(c.dir)].append(r)
            print(json.dumps({"round": rnd, "cluster": str(c.dir), **{k: round(v, 2) for k, v in r.items()}}),
                  flush=True)
    keys = ["ops/s", "gateway", "leader", "followers", "storage", "total", "gateway net", "leader net",
            "followers net", "storage net", "total net", "raft calls to followers per GET", "load"]
    print("\nmedians over rounds (CPU-µs per GET):")
    print("cluster".ljust(28) + "".join(k.replace(" to followers per GET", "/GET")[:14].rjust(15) for k in keys))
    for d, rs in results.items():
        print(d[-28:].ljust(28) + "".join(f"{statistics.median(r[k] for r in rs):15.1f}" for k in keys))


if __name__ == "__main__":
    main()
