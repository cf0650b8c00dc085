"""Repair on a cluster of its own: time to restore full redundancy after losing a node, repair
MB/s per node, and what repair costs foreground reads and writes.

Run: ``.venv/bin/python -m ops.bench_repair [--data-mb 256] [--object-size 1MiB]
[--repair-rate 20] [--storage-nodes 6] [--down-after S] [--json]``. It starts ``objstore
up`` (replica:3, ``--repair-rate`` MB/s per storage node) in a temporary data dir, writes
``--data-mb`` of objects, then measures a mixed foreground load at concurrency 8 for a few
seconds (4 KiB objects, three GETs to one PUT; p50/p99 of each, healthy). It SIGKILLs
storage node s1, sets it ``out`` through the metadata service (or, with ``--down-after
S``, lets the leader mark it down after ``--node-timeout 1`` and out S seconds later, the
time to full redundancy then counting from the kill), and polls ``GET /v1/repair/status``
until nothing is below policy, running the same load meanwhile (p50/p99 during repair).
It prints the bytes the lost node held, the time to restore full redundancy, the repair
rate (bytes re-created over the time from out to full redundancy, in all and per storage
node, from their ``objstore_repair_bytes_total``) and the latency figures. With zones
(``objstore up`` spreads nodes over three), the ring re-places a lost node's copies on the
other nodes of its zone, so those do the work. The cluster is stopped and its data dir
removed at the end. The figures are only as steady as the machine is idle.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp

from gateway.auth.sign import SigV4Signer
from metadata.api.client import MetadataClient
from objstore.node.client import StorageClient
from ops.bench.s3client import S3Client
from ops.bench.settings import parse_size
from ops.bench_ec_degraded import ACCESS, SECRET, start_cluster, stop_cluster
from ops.cli.output import table

BUCKET = "repair-bench"
SMALL = 4096
CONCURRENCY = 8


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def read_load(client: S3Client, keys: list[str], stop: asyncio.Event) -> dict[str, list[float]]:
    """4 KiB GETs of ``keys`` and, every fourth operation, a 4 KiB PUT, at CONCURRENCY until
    ``stop``; the latencies in seconds of each ("get", "put")."""
    latencies: dict[str, list[float]] = {"get": [], "put": []}
    body = os.urandom(SMALL)

    async def one(i: int) -> None:
        n = i
        while not stop.is_set():
            t = time.perf_counter()
            if n % 4 == 3:
                op, out = "put", await client.put(BUCKET, f"load/{n:08d}", body, len(body))
            else:
                op, out = "get", await client.get(BUCKET, keys[n % len(keys)])
            if out.error is None:
                latencies[op].append(time.perf_counter() - t)
            n += CONCURRENCY

    await asyncio.gather(*(one(i) for i in range(CONCURRENCY)))
    return latencies


async def timed_load(client: S3Client, keys: list[str], seconds: float) -> dict[str, list[float]]:
    stop = asyncio.Event()
    task = asyncio.create_task(read_load(client, keys, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


def cluster_parts(info: dict[str, Any], data_dir: Path) -> tuple[str, list[str], dict[str, dict[str, Any]]]:
    """(cluster secret, metadata addresses, storage processes by id) of a started cluster."""
    secret = json.loads((data_dir / "credentials.json").read_text())["cluster_secret"]
    meta_addrs = [p["address"] for p in info["processes"] if p["role"] == "metadata"]
    return secret, meta_addrs, {p["id"]: p for p in info["processes"] if p["role"] == "storage"}


async def fill(client: S3Client, count: int, size: int) -> list[str]:
    """A replica:3 bucket with ``count`` objects of ``size`` bytes and 200 small ones (the
    keys the foreground GETs read, returned)."""
    body, small = os.urandom(size), os.urandom(SMALL)
    await client.create_bucket(BUCKET, "replica:3")
    sem = asyncio.Semaphore(8)

    async def put(key: str, data: bytes) -> None:
        async with sem:
            out = await client.put(BUCKET, key, data, len(data))
            if out.error:
                raise RuntimeError(f"PUT {key}: {out.error}")

    await asyncio.gather(*(put(f"big/{i:06d}", body) for i in range(count)))
    small_keys = [f"small/{i:04d}" for i in range(200)]
    await asyncio.gather(*(put(k, small) for k in small_keys))
    return small_keys


def s3_client(info: dict[str, Any]) -> S3Client:
    return S3Client(info["endpoint"], SigV4Signer(ACCESS, SECRET, "us-east-1"), connections=CONCURRENCY + 8)


async def measure(info: dict[str, Any], data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    secret, meta_addrs, storage = cluster_parts(info, data_dir)
    size = parse_size(args.object_size)
    count = max(1, args.data_mb * 10**6 // size)
    fig: dict[str, Any] = {"objects": count, "object_size": size, "repair_rate_mb_s": args.repair_rate}
    async with s3_client(info) as client, aiohttp.ClientSession() as session:
        meta = MetadataClient(meta_addrs, secret, session=session, client_id="bench-repair")
        small_keys = await fill(client, count, size)
        before = await timed_load(client, small_keys, args.load_seconds)
        lost = storage["s1"]
        fig["lost_node_bytes"] = (await StorageClient(session, secret).stats(lost["address"]))["used_bytes"]
        os.kill(lost["pid"], signal.SIGKILL)
        start = time.monotonic()
        if args.down_after is None:
            await meta.set_node_state("s1", "out")
        else:  # the leader marks it down, then out: nothing is below policy before that
            while (await meta.get_cluster_map()).node("s1").state != "out":
                await asyncio.sleep(0.1)
            fig["marked_out_after_s"] = time.monotonic() - start
        first = await meta.repair_status()
        fig["bytes_below_policy_at_loss"] = first["bytes_below_policy"]
        fig["objects_below_policy_at_loss"] = first["objects_below_policy"]
        stop = asyncio.Event()
        load = asyncio.create_task(read_load(client, small_keys, stop))
        while True:
            st = await meta.repair_status()
            if st["objects_below_policy"] == 0:
                break
            if time.monotonic() - start > args.timeout:
                raise RuntimeError(f"still below policy after {args.timeout}s: {st}")
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - start
        stop.set()
        during = await load
        fig["repaired_mb_by_node"] = {  # with zones, a lost node's copies go to its zone's other nodes
            nid: await metric_total(session, p["address"]) / 1e6 for nid, p in storage.items() if nid != "s1"}
        repaired = fig["bytes_below_policy_at_loss"]
        repairing = elapsed - fig.get("marked_out_after_s", 0.0)  # from out (nothing to repair before)
        fig.update(
            restore_seconds=elapsed,
            repair_seconds=repairing,
            repair_mb_s=repaired / repairing / 1e6,
            repair_mb_s_by_node={n: mb / repairing for n, mb in fig["repaired_mb_by_node"].items()},
            gets_before=len(before["get"]), gets_during=len(during["get"]),
            puts_before=len(before["put"]), puts_during=len(during["put"]),
            get_mean_ms_during=_ms(statistics.fmean(during["get"])) if during["get"] else None,
        )
        for op in ("get", "put"):
            for when, lat in (("before", before[op]), ("during", during[op])):
                fig[f"{op}_p50_ms_{when}"] = _ms(percentile(lat, 0.5))
                fig[f"{op}_p99_ms_{when}"] = _ms(percentile(lat, 0.99))
    return fig


async def metric_total(session: aiohttp.ClientSession, address: str,
                       name: str = "objstore_repair_bytes_total") -> float:
    """The sum of a metric's samples on one storage node's public /metrics."""
    async with session.get(f"http://{address}/metrics") as resp:
        text = await resp.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def render(f: dict[str, Any]) -> str:
    def num(v: Any, fmt: str = "{:.1f}") -> str:
        return "-" if v is None else fmt.format(v)

    rows = [
        ("figure", "value"),
        ("objects written", f"{f['objects']} x {f['object_size']} B"),
        ("bytes on the lost node", f"{f['lost_node_bytes'] / 1e6:.1f} MB"),
        ("below policy at loss", f"{f['objects_below_policy_at_loss']} objects, "
                                 f"{f['bytes_below_policy_at_loss'] / 1e6:.1f} MB"),
        ("--repair-rate per node", f"{f['repair_rate_mb_s']:g} MB/s"),
        ("time to full redundancy", f"{num(f['restore_seconds'])} s"),
        ("repair rate", f"{num(f['repair_mb_s'])} MB/s"),
        ("MB re-created by node", "  ".join(f"{n} {mb:.0f}" for n, mb in sorted(f["repaired_mb_by_node"].items()))),
        ("MB/s by node", "  ".join(f"{n} {v:.1f}" for n, v in sorted(f["repair_mb_s_by_node"].items()))),
        *((f"4 KiB {op.upper()} p50 / p99 {label}", f"{num(f[f'{op}_p50_ms_{when}'])} / {num(f[f'{op}_p99_ms_{when}'])} ms")
          for op in ("get", "put") for when, label in (("before", "healthy"), ("during", "during repair"))),
    ]
    if "marked_out_after_s" in f:
        rows.insert(6, ("marked out after", f"{f['marked_out_after_s']:.1f} s (from the kill; "
                                            f"repair took {f['repair_seconds']:.1f} s after that)"))
    return table(rows)


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, "repair", __doc__, "--repair-rate", 256, measure, render)


def bench_main(argv: list[str] | None, name: str, doc: str, rate_flag: str, data_mb: int,
               measure: Callable[[dict[str, Any], Path, argparse.Namespace], Awaitable[dict[str, Any]]],
               render: Callable[[dict[str, Any]], str]) -> int:
    """``python -m ops.bench_<name>``: parse the common flags, start a cluster with
    ``rate_flag``, ``measure`` it, stop it, print the figures (``render`` or JSON)."""
    p = argparse.ArgumentParser(prog=f"python -m ops.bench_{name}", description=doc.split("\n\n")[0])
    p.add_argument("--data-mb", type=int, default=data_mb, help=f"MB of objects to write (default {data_mb})")
    p.add_argument("--object-size", default="1MiB", help="size of each object (default 1MiB)")
    p.add_argument(rate_flag, type=float, default=20.0, help="MB/s per storage node (default 20)")
    p.add_argument("--storage-nodes", type=int, default=6)
    p.add_argument("--load-seconds", type=float, default=5.0, help="seconds of healthy GET load (default 5)")
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--down-after", type=float, default=None,
                   help="let the leader mark the lost node out (--node-timeout 1, this --down-after)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix=f"objstore-bench-{name}-"))
    data_dir = tmp / "data"
    proc = None
    rate = getattr(args, rate_flag.lstrip("-").replace("-", "_"))
    try:
        liveness = () if args.down_after is None else ("--node-timeout", "1", "--down-after", f"{args.down_after:g}")
        proc, info = start_cluster(data_dir, args.storage_nodes, (rate_flag, f"{rate:g}", *liveness))
        figures = asyncio.run(measure(info, data_dir, args))
    finally:
        if proc is not None:
            stop_cluster(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures, indent=2) if args.json else render(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
