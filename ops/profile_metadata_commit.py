"""Where the wall-clock time of one metadata write goes, at one client.

Spawns a 3-member metadata group with ``OBJSTORE_METADATA_TRACE`` set (see
:mod:`metadata.latency_trace`), writes small version records one at a time for
``--duration`` seconds, then lines up each write's events across the client, the leader
and the followers and prints the median time between consecutive steps:

    python -m ops.profile_metadata_commit --duration 10 [--env NAME=VALUE ...]

Steps (leader L, followers f): client sends -> L handler (H0) -> proposed (P) -> L Ready
taken (R) -> APP posted to each follower (S) -> f handler (fH0) -> f Ready (R) -> f log
durable (F) -> f answers (fH1) -> L has the answer (A) -> L log durable (F) -> applied (C)
-> proposal resolved (W) -> L answers (H1) -> client has the answer. Then each member's CPU
per write and, on Linux, how long each member and the client waited per write for a CPU
(runqueue time from ``/proc/<pid>/task/*/schedstat``): on a loaded machine most of a
step's time is that wait.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from objstore.hlc import HLC
from ops.bench.monitor import process_cpu
from ops.bench_metadata.spawn import MetadataNodes
from ops.bench_metadata.systems import ObjstoreSystem
from ops.bench_metadata.workload import bench_key, bench_version


def runqueue_wait(pid: int) -> tuple[float, int] | None:
    """Seconds process ``pid``'s threads have waited on a CPU's runqueue so far, and how many
    times they were put on a CPU (Linux ``/proc/<pid>/task/*/schedstat``; None elsewhere)."""
    wait, runs, seen = 0, 0, False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                fields = f.read().split()
        except OSError:
            continue  # a thread that ended meanwhile
        wait += int(fields[1])
        runs += int(fields[2])
        seen = True
    return (wait / 1e9, runs) if seen else None


def _read_traces(d: Path) -> dict[int, list[tuple[str, int, int]]]:
    out: dict[int, list[tuple[str, int, int]]] = {}
    for f in d.glob("*.trace"):
        rows = []
        for line in f.read_text().splitlines():
            name, idx, ns = line.split()[:3]
            rows.append((name, int(idx), int(ns)))
        out[int(f.stem)] = rows
    return out


def _first(rows: list[tuple[str, int, int]], name: str, lo: int, hi: int, index: int | None = None) -> int | None:
    for n, i, t in rows:
        if n == name and lo <= t <= hi and (index is None or i >= index):
            return t
    return None


async def _load(nodes: MetadataNodes, duration: float) -> list[tuple[int, int]]:
    system = ObjstoreSystem("objstore", nodes.addresses, nodes.secret)
    bucket = f"prof-{uuid.uuid4().hex[:8]}"
    hlc = HLC("prof")
    windows = []
    try:
        await system.setup(bucket)
        end = time.monotonic() + duration
        i = 0
        while time.monotonic() < end:
            key = bench_key("p", 0, i)
            v = bench_version(bucket, key, hlc.next(), time.time(), owner="bench-metadata", ordinal=i)
            t0 = time.monotonic_ns()
            await system.write(key, v)
            windows.append((t0, time.monotonic_ns()))
            i += 1
    finally:
        await system.close()
    return windows


def analyse(traces: dict[int, list[tuple[str, int, int]]], windows: list[tuple[int, int]]) -> list[str]:
    leader = max(traces, key=lambda p: sum(1 for r in traces[p] if r[0] == "H0"))
    followers = [p for p in traces if p != leader]
    L = traces[leader]
    steps: dict[str, list[float]] = defaultdict(list)
    totals = []
    for c0, c1 in windows[len(windows) // 10:]:  # skip the warm-up
        h0 = _first(L, "H0", c0, c1)
        p = next(((i, t) for n, i, t in L if n == "P" and c0 <= t <= c1), None)
        if h0 is None or p is None:
            continue
        idx = p[0]
        pts = {"client sends": c0, "L handler": h0, "L proposed": p[1],
               "L ready": _first(L, "R", c0, c1, idx), "L durable": _first(L, "F", c0, c1, idx),
               "L applied": _first(L, "C", c0, c1, idx), "L resolved": _first(L, "W", c0, c1, idx),
               "L answers": _first(L, "H1", c0, c1), "client has it": c1}
        fol = []
        for fp in followers:
            F = traces[fp]
            fh0 = _first(F, "fH0", c0, c1, idx)
            if fh0 is None:
                continue
            durable = _first(F, "F", fh0, c1, idx)
            fol.append({"f handler": fh0, "f ready": _first(F, "R", fh0, c1, idx),
                        "f write starts": _first(F, "Ws", fh0, c1, idx), "f fsync done": _first(F, "We", fh0, c1, idx),
                        "f durable": durable,
                        "f answers": _first(F, "fH1", durable, c1) if durable is not None else None})
        if any(v is None for v in pts.values()):
            continue
        for name, t in pts.items():
            steps[name].append((t - c0) / 1e6)
        for k, f in enumerate(sorted(fol, key=lambda f: f["f answers"] or 1 << 62)):
            for name, t in f.items():
                if t is not None:
                    steps[f"{name} #{k + 1}"].append((t - c0) / 1e6)
        for name, ev in (("L write starts", "Ws"), ("L fsync done", "We")):
            t = _first(L, ev, c0, c1, idx)
            if t is not None:
                steps[name].append((t - c0) / 1e6)
        for peer_ev in sorted({n for n, _, _ in L if n.startswith("S:")}):
            t = _first(L, peer_ev, h0, c1, idx)
            if t is not None:
                steps[f"L posts to {peer_ev[2:]}"].append((t - c0) / 1e6)
            a = _first(L, "A:" + peer_ev[2:], t or h0, c1)
            if a is not None:
                steps[f"L has the answer of {peer_ev[2:]}"].append((a - c0) / 1e6)
        totals.append((c1 - c0) / 1e6)
    lines = [f"{len(totals)} writes, p50 {statistics.median(totals):.2f} ms, mean {statistics.mean(totals):.2f} ms; "
             "median ms from the client's send to each step (followers #1, #2 by when they answered):"]
    order = sorted(steps, key=lambda k: statistics.median(steps[k]))
    for k in order:
        v = steps[k]
        lines.append(f"  {k:<32} {statistics.median(v):7.2f}  (n={len(v)})")
    return lines


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the metadata nodes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="metadata-profile-") as tmp:
        trace_dir = Path(tmp) / "trace"
        trace_dir.mkdir()
        nodes = MetadataNodes(3, Path(tmp), secret=uuid.uuid4().hex)
        nodes.env = {**(nodes.env or {}), "OBJSTORE_METADATA_TRACE": str(trace_dir),
                     **dict(e.split("=", 1) for e in args.env)}
        nodes.start()
        try:
            await nodes.wait_ready()
            pids = nodes.pids
            cpu0 = {p: process_cpu(p) for p in pids}
            rq0 = {p: runqueue_wait(p) for p in [*pids, os.getpid()]}
            windows = await _load(nodes, args.duration)
            cpu = {p: process_cpu(p) - cpu0[p] for p in pids}
            rq1 = {p: runqueue_wait(p) for p in rq0}
        finally:
            nodes.stop()
        traces = _read_traces(trace_dir)
        for line in analyse(traces, windows):
            print(line)
        leader = max(traces, key=lambda p: sum(1 for r in traces[p] if r[0] == "H0"))
        per = [f"{'leader' if p == leader else 'follower'} {cpu[p] / max(1, len(windows)) * 1e6:,.0f}"
               for p in sorted(cpu, key=lambda p: p != leader)]
        print("CPU-µs per write (whole process, idle work included): " + ", ".join(per))
        n = max(1, len(windows))
        waits = []
        for p in [*sorted(cpu, key=lambda p: p != leader), os.getpid()]:
            a, b = rq0.get(p), rq1.get(p)
            if a is not None and b is not None:
                name = "client" if p == os.getpid() else "leader" if p == leader else "follower"
                waits.append(f"{name} {(b[0] - a[0]) / n * 1e6:,.0f} in {(b[1] - a[1]) / n:.1f} runs")
        if waits:  # the time each process was ready to run but had no CPU (a loaded machine's share)
            print("runqueue wait µs per write (whole process): " + ", ".join(waits))
    print(f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
