"""replica:3 against ec:4+2 on a cluster of its own, healthy and with storage nodes killed.

Run: ``.venv/bin/python -m ops.bench_ec_degraded [--large-size 64MiB] [--large-count 4]
[--duration 5] [--kill 2] [--json]``. It starts ``objstore up`` (six storage nodes in
three zones) in a temporary data dir, and for each policy creates a bucket and measures,
with the phases of ``objstore bench`` (:class:`ops.bench.runner.BenchRun`):
- large PUT and GET MB/s (10^6 bytes), one object at a time;
- 4 KiB PUT and GET ops/s at concurrency 32 (an ec bucket stores these as replica:M+1);
- bytes on disk per byte stored: the storage nodes' ``used_bytes`` (their own accounting
  of their files, blob headers and checksum blocks included) grown by the large PUTs,
  over the bytes put.
Then it SIGKILLs ``--kill`` storage nodes and reads the same large objects again from the
ec bucket (degraded: decoded from the shards left) and the replica bucket, and prints
each as a share of its healthy figure. The cluster is stopped and its data dir removed at
the end, whatever happened. The figures are only as steady as the machine is idle.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import aiohttp

from gateway.auth.sign import SigV4Signer
from objstore.cluster.supervisor import free_port
from objstore.node.client import StorageClient
from ops.bench.loadgen import PhaseSpec
from ops.bench.monitor import ProcessMonitor, cluster_processes, read_cluster_info
from ops.bench.runner import BenchRun
from ops.bench.s3client import S3Client
from ops.bench.settings import BenchSettings, parse_size
from ops.cli.output import table

POLICIES = ("replica:3", "ec:4+2")
SMALL = 4096
SMALL_CONCURRENCY = 32
ACCESS, SECRET = "BENCHACCESSKEY01", "bench-secret-key-0001"


def start_cluster(data_dir: Path, storage_nodes: int,
                  extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, dict[str, Any]]:
    """``objstore up`` (with ``extra`` flags) in ``data_dir``; its process and cluster.json
    once it is running."""
    log = open(data_dir.parent / "up.log", "wb")
    cmd = [sys.executable, "-m", "ops.cli", "up", "--data-dir", str(data_dir), "--s3-port", str(free_port()),
           "--storage-nodes", str(storage_nodes), *extra]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OBJSTORE_ACCESS_KEY": ACCESS, "OBJSTORE_SECRET_KEY": SECRET})
    log.close()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"objstore up exited: {(data_dir.parent / 'up.log').read_text()}")
        if b"objstore is running" in (data_dir.parent / "up.log").read_bytes():
            return proc, json.loads((data_dir / "cluster.json").read_text())
        time.sleep(0.2)
    stop_cluster(proc)
    raise RuntimeError("objstore up did not start in 90 s")


def stop_cluster(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def on_own_cluster(prefix: str, storage_nodes: int, extra: tuple[str, ...],
                   measure: Callable[[dict[str, Any], Path], dict[str, Any]]) -> dict[str, Any]:
    """Start ``objstore up`` (with ``extra`` flags) in a temporary dir, return
    ``measure(cluster info, data dir)``; the cluster is stopped and the dir removed whatever
    happened."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    proc = None
    try:
        proc, info = start_cluster(tmp / "data", storage_nodes, extra)
        return measure(info, tmp / "data")
    finally:
        if proc is not None:
            stop_cluster(proc)
        shutil.rmtree(tmp, ignore_errors=True)


async def disk_used(storage: StorageClient, addresses: list[str]) -> int:
    """The storage nodes' used bytes, summed (nodes that do not answer count 0)."""
    async def one(a: str) -> int:
        try:
            return int((await storage.stats(a)).get("used_bytes") or 0)
        except Exception:  # noqa: BLE001 - a killed node holds nothing we can count
            return 0
    return sum(await asyncio.gather(*(one(a) for a in addresses)))


def settings(endpoint: str, data_dir: Path, policy: str, large: int, count: int, duration: float) -> BenchSettings:
    return BenchSettings(endpoint=endpoint, access_key=ACCESS, secret_key=SECRET, region="us-east-1",
                         data_dir=str(data_dir), bucket=None, duration_s=duration, small_size=SMALL, large_size=large,
                         large_count=count, concurrency=(SMALL_CONCURRENCY,), large_concurrency=(1,),
                         phases=("large-put", "large-get", "small-put", "small-get"), json=False, policy=policy)


async def measure(info: dict[str, Any], data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    endpoint = info["endpoint"]
    storage_procs = [p for p in info["processes"] if p["role"] == "storage"]
    secret = json.loads((data_dir / "credentials.json").read_text())["cluster_secret"]
    processes, why = cluster_processes(read_cluster_info(data_dir), endpoint)
    monitor = ProcessMonitor(processes, endpoint, unavailable=why)
    signer = SigV4Signer(ACCESS, SECRET, "us-east-1")
    large = parse_size(args.large_size)
    figures: dict[str, Any] = {"large_size": large, "large_count": args.large_count, "small_size": SMALL,
                               "small_concurrency": SMALL_CONCURRENCY, "killed": [], "policies": {}}
    runs: dict[str, BenchRun] = {}
    async with S3Client(endpoint, signer, connections=SMALL_CONCURRENCY + 4) as client, \
            aiohttp.ClientSession() as session:
        storage = StorageClient(session, secret)
        addresses = [p["address"] for p in storage_procs]
        try:
            for policy in POLICIES:
                s = settings(endpoint, data_dir, policy, large, args.large_count, args.duration)
                run = runs[policy] = BenchRun(s, client, monitor, sys.stderr, random.Random())
                await run.setup()
                if policy == POLICIES[0]:  # warm up connections and caches, untimed (its figures are dropped)
                    await run.run_phase(PhaseSpec("small-put", "put", SMALL, SMALL_CONCURRENCY, duration_s=1.0))
                    run.pools["small"].clear()
                fig: dict[str, Any] = {}
                figures["policies"][policy] = fig
                before = await disk_used(storage, addresses)
                put = await run.run_phase(PhaseSpec("large-put", "put", large, 1, count=args.large_count))
                fig["disk_per_byte"] = (await disk_used(storage, addresses) - before) / (large * args.large_count)
                get = await run.run_phase(PhaseSpec("large-get", "get", large, 1, count=args.large_count))
                sput = await run.run_phase(PhaseSpec("small-put", "put", SMALL, SMALL_CONCURRENCY,
                                                     duration_s=args.duration))
                sget = await run.run_phase(PhaseSpec("small-get", "get", SMALL, SMALL_CONCURRENCY,
                                                     duration_s=args.duration))
                fig.update(large_put_mb_s=put.mb_per_s, large_get_mb_s=get.mb_per_s, small_put_ops_s=sput.ops_per_s,
                           small_get_ops_s=sget.ops_per_s, errors=put.errors + get.errors + sput.errors + sget.errors)
            for p in storage_procs[: args.kill]:
                os.kill(p["pid"], signal.SIGKILL)
                figures["killed"].append(p["id"])
            await asyncio.sleep(1.0)
            for policy, run in runs.items():
                fig = figures["policies"][policy]
                get = await run.run_phase(PhaseSpec("large-get", "get", large, 1, count=args.large_count))
                fig["degraded_get_mb_s"] = get.mb_per_s
                fig["degraded_errors"] = get.errors
                if get.mb_per_s and fig["large_get_mb_s"]:
                    fig["degraded_share"] = get.mb_per_s / fig["large_get_mb_s"]
        finally:
            for run in runs.values():
                await run.cleanup()
    return figures


def render(f: dict[str, Any]) -> str:
    def num(v: Any, fmt: str = "{:.1f}") -> str:
        return "-" if v is None else fmt.format(v)

    rows = [("POLICY", "PUT MB/s", "GET MB/s", f"GET MB/s, {len(f['killed'])} down", "% OF HEALTHY",
             "4K PUT ops/s", "4K GET ops/s", "DISK/BYTE", "ERRORS")]
    for policy, p in f["policies"].items():
        rows.append((policy, num(p.get("large_put_mb_s")), num(p.get("large_get_mb_s")),
                     num(p.get("degraded_get_mb_s")), num(100 * p["degraded_share"] if "degraded_share" in p else None,
                                                          "{:.0f}%"),
                     num(p.get("small_put_ops_s"), "{:.0f}"), num(p.get("small_get_ops_s"), "{:.0f}"),
                     num(p.get("disk_per_byte"), "{:.4f}"), str(p.get("errors", 0) + p.get("degraded_errors", 0))))
    return (f"{f['large_count']} objects of {f['large_size']} bytes one at a time; {f['small_size']}-byte objects at "
            f"concurrency {f['small_concurrency']}; killed (SIGKILL): {', '.join(f['killed']) or 'none'}\n"
            + table(rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench_ec_degraded", description=__doc__.split("\n")[0])
    p.add_argument("--large-size", default="64MiB")
    p.add_argument("--large-count", type=int, default=4)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per 4 KiB phase")
    p.add_argument("--kill", type=int, default=2, help="storage nodes to SIGKILL before the degraded reads")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="objstore-bench-ec-") as tmp:
        data_dir = Path(tmp) / "data"
        proc, info = start_cluster(data_dir, 6)
        try:
            figures = asyncio.run(measure(info, data_dir, args))
        finally:
            stop_cluster(proc)
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0 if all(not p.get("errors") and not p.get("degraded_errors") for p in figures["policies"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
