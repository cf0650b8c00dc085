"""The storage node's CPU per small internal call: one node process, calls from another.

``python -m ops.bench_node_calls [--concurrency 16] [--seconds 5] [--rounds 3]
[--phases put,get,manifest,batch,blobs] [--variants default] [--profile DIR] [--json]``

Starts one storage node per variant (``objstore storage``, uvloop, no metadata service,
each on a free 127.0.0.1 port with a data dir of its own under a temporary folder), then
drives each phase from this process through the gateway's pooled client
(:mod:`objstore.internal_http` via :class:`objstore.node.client.StorageClient`), with
``--concurrency`` callers for ``--seconds``:

- ``put``: 4 KiB blob writes (``PUT /blobs/{vid}/{shard}``), a new version id each;
- ``get``: 4 KiB blob reads (``GET /blobs/...`` with a range, as the gateway sends them);
- ``manifest``: one commit manifest per call (``PUT /manifests``);
- ``batch``: four manifests per call (``PUT /manifests/batch``);
- ``blobs``: four 4 KiB blob writes per call (``PUT /blobs/batch``; not in the default phases,
  a node without the route answers 404).

For each (round, variant, phase) it prints calls/s and the node's CPU per call in µs
(user + system time of the whole node process from ``/proc/<pid>/stat``, before and
after the phase; also its system part and the event loop thread's share), then the median per (variant, phase). Rounds interleave the variants
(A B A B ...), so on a shared machine the columns compare.

A variant is ``NAME[@PYTHON][:VAR=VALUE[;VAR=VALUE]]``: the node runs with that Python
(default this one; e.g. another checkout's virtualenv, to compare versions) and that
environment (e.g. to switch an implementation by an environment variable). ``--profile DIR`` runs each
node under cProfile (CPU time of the event loop's thread) and writes ``DIR/<variant>.prof`` when it stops.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

from objstore.node.blob_batch import BlobWrite

HOST = "127.0.0.1"
SECRET = "bench-node-calls-secret"
BLOB = 4096
PHASES = ("put", "get", "manifest", "batch")
ALL_PHASES = PHASES + ("blobs",)
_PROFILED = """
import cProfile, sys, time
from objstore.eventloop import install_fast_loop
from objstore.node.__main__ import parse_args
from objstore.node.app import main
install_fast_loop()
cfg = parse_args(sys.argv[2:])
prof = cProfile.Profile(time.thread_time)  # CPU time of the loop's thread, not wall time
prof.runcall(main, cfg)
prof.dump_stats(sys.argv[1])
"""


@dataclass
class Node:
    name: str
    address: str
    proc: subprocess.Popen

    def cpu_seconds(self) -> tuple[float, float, float]:
        """(user + system, system, the event loop thread's user + system) CPU seconds so far."""
        def times(path: str) -> tuple[int, int]:
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]), int(fields[12])  # utime, stime

        tick = os.sysconf("SC_CLK_TCK")
        user, system = times(f"/proc/{self.proc.pid}/stat")
        main = sum(times(f"/proc/{self.proc.pid}/task/{self.proc.pid}/stat"))
        return (user + system) / tick, system / tick, main / tick


def parse_variant(text: str) -> tuple[str, str, dict[str, str]]:
    """``NAME[@PYTHON][:VAR=VALUE[;VAR=VALUE]]`` -> (name, python, environment)."""
    head, _, rest = text.partition(":")
    name, _, python = head.partition("@")
    env = dict(item.split("=", 1) for item in rest.split(";") if item)
    return name, python or sys.executable, env


def start_node(name: str, python: str, env: dict[str, str], root: str, profile_dir: str | None) -> Node:
    from objstore.cluster.supervisor import free_port

    port = free_port(HOST)
    data = os.path.join(root, name)
    args = ["--node-id", f"bench-{name}", "--data-dir", data, "--host", HOST, "--port", str(port),
            "--secret", SECRET, "--repair-rate", "0"]
    if profile_dir:
        argv = [python, "-c", _PROFILED, os.path.join(profile_dir, f"{name}.prof"), *args]
    else:
        argv = [python, "-m", "ops.cli", "storage", *args]
    log = open(os.path.join(root, f"{name}.log"), "wb")
    # Run from the data folder: the code is the one installed for that Python, not this folder's.
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    node = Node(name, f"{HOST}:{port}", proc)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"node {name} exited: see {log.name}")
        try:
            with urllib.request.urlopen(f"http://{node.address}/health/ready", timeout=1) as resp:
                if resp.status == 200:
                    return node
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"node {name} not ready in 60 s: see {log.name}")


def stop_node(node: Node) -> None:
    if node.proc.poll() is None:
        node.proc.send_signal(signal.SIGINT)
        try:
            node.proc.wait(30)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait()


def _manifest(i: int):  # noqa: ANN202 - a CommitManifest
    from objstore.manifest import CommitManifest
    from objstore.types import ObjectVersion

    key = f"key-{uuid.uuid4().hex[:12]}"
    version = ObjectVersion("bench", key, uuid.uuid4().hex, BLOB, "0" * 32, time.time(),
                            placement=("s1", "s2", "s3"), ring_epoch=1)
    return CommitManifest("bench", key, i + 1, version, write_quorum=2)


async def run_phase(storage, node: Node, phase: str, concurrency: int, seconds: float,  # noqa: ANN001
                    written: list[str]) -> tuple[int, float, tuple[float, float, float]]:
    """(calls, wall seconds, node CPU seconds: total, system, loop thread) of ``phase`` against ``node``."""
    payload = os.urandom(BLOB)
    counter = iter(range(10**9))

    async def put() -> None:
        vid = uuid.uuid4().hex
        await storage.put_blob(node.address, vid, 0, "bench", f"k/{vid}", "replica:3", BLOB, payload)
        if len(written) < 10_000:
            written.append(vid)

    async def get() -> None:
        vid = written[next(counter) % len(written)]
        async with storage.get_blob(node.address, vid, 0, 0, BLOB - 1) as blob:
            await blob.read()

    async def manifest() -> None:
        await storage.put_manifest(node.address, _manifest(next(counter)), ring_epoch=1)

    async def batch() -> None:
        await storage.put_manifests(node.address, [_manifest(next(counter)) for _ in range(4)], ring_epoch=1)

    async def blobs() -> None:
        vids = [uuid.uuid4().hex for _ in range(4)]
        await storage.put_blobs(node.address, [BlobWrite(v, 0, "bench", f"k/{v}", "replica:3", payload) for v in vids])

    call: Callable[[], Awaitable[None]] = {"put": put, "get": get, "manifest": manifest, "batch": batch,
                                           "blobs": blobs}[phase]
    if phase == "get" and not written:
        for _ in range(64):
            await put()
    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await call()
            done += 1

    for _ in range(concurrency):  # warm the pool's connections
        await call()
    cpu0, t0 = node.cpu_seconds(), time.monotonic()
    stop_at = t0 + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1, cpu1 = time.monotonic(), node.cpu_seconds()
    return done, t1 - t0, tuple(b - a for a, b in zip(cpu0, cpu1))  # type: ignore[return-value]


async def drive(nodes: list[Node], phases: list[str], concurrency: int, seconds: float, rounds: int,
                as_json: bool) -> list[dict]:
    import aiohttp

    from objstore.internal_http import HttpPool
    from objstore.node.client import StorageClient

    pool = HttpPool()
    rows: list[dict] = []
    written: dict[str, list[str]] = {n.name: [] for n in nodes}
    async with aiohttp.ClientSession() as session:
        storage = StorageClient(session, SECRET, pool=pool)
        for rnd in range(1, rounds + 1):
            for phase in phases:
                for node in nodes:
                    calls, wall, (cpu, system, loop) = await run_phase(storage, node, phase, concurrency, seconds,
                                                                       written[node.name])
                    per = 1e6 / max(calls, 1)
                    row = {"round": rnd, "variant": node.name, "phase": phase, "calls": calls,
                           "calls_per_s": calls / wall, "cpu_us_per_call": cpu * per,
                           "system_us_per_call": system * per, "loop_thread_us_per_call": loop * per,
                           "node_cpu_share": cpu / wall, "load": os.getloadavg()[0]}
                    rows.append(row)
                    if not as_json:
                        print(f"round {rnd} {node.name:>10} {phase:>8}: {row['calls_per_s']:8.0f} calls/s "
                              f"{row['cpu_us_per_call']:7.0f} CPU-µs/call (system {row['system_us_per_call']:.0f}, "
                              f"loop thread {row['loop_thread_us_per_call']:.0f}; node at {row['node_cpu_share']:.0%} "
                              f"of a core, load {row['load']:.1f})", flush=True)
    await pool.close()
    return rows


def medians(rows: list[dict]) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["variant"], r["phase"]) for r in rows):
        sel = [r for r in rows if (r["variant"], r["phase"]) == key]
        out.append({"variant": key[0], "phase": key[1],
                    "calls_per_s": statistics.median(r["calls_per_s"] for r in sel),
                    "cpu_us_per_call": statistics.median(r["cpu_us_per_call"] for r in sel),
                    "system_us_per_call": statistics.median(r["system_us_per_call"] for r in sel),
                    "loop_thread_us_per_call": statistics.median(r["loop_thread_us_per_call"] for r in sel),
                    "rounds": len(sel)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench_node_calls", description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--variants", default="default", help="comma-separated NAME[@PYTHON][:VAR=VALUE;...]")
    p.add_argument("--profile", metavar="DIR", help="run the nodes under cProfile, write DIR/<variant>.prof")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    phases = [x for x in args.phases.split(",") if x]
    if not set(phases) <= set(ALL_PHASES):
        p.error(f"phases are {', '.join(ALL_PHASES)}")
    from objstore.eventloop import install_fast_loop

    install_fast_loop()
    root = tempfile.mkdtemp(prefix="bench-node-calls-")
    nodes: list[Node] = []
    try:
        for text in args.variants.split(","):
            nodes.append(start_node(*parse_variant(text), root, args.profile))
        rows = asyncio.run(drive(nodes, phases, args.concurrency, args.seconds, args.rounds, args.json))
    finally:
        for node in nodes:
            stop_node(node)
        shutil.rmtree(root, ignore_errors=True)
    summary = medians(rows)
    if args.json:
        print(json.dumps({"rounds": rows, "medians": summary}, indent=2))
    else:
        print("medians:")
        for s in summary:
            print(f"  {s['variant']:>10} {s['phase']:>8}: {s['calls_per_s']:8.0f} calls/s "
                  f"{s['cpu_us_per_call']:7.0f} CPU-µs/call (system {s['system_us_per_call']:.0f}, loop thread "
                  f"{s['loop_thread_us_per_call']:.0f}; {s['rounds']} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
