"""Rebalancing on a cluster of its own: time to drain a node holding N MB, rebalance MB/s,
and what moving costs foreground reads.

Run: ``.venv/bin/python -m ops.bench_rebalance [--data-mb 128] [--object-size 1MiB]
[--rebalance-rate 20] [--storage-nodes 6] [--json]``. It starts ``objstore up``
(replica:3, ``--rebalance-rate`` MB/s per storage node) in a temporary data dir, writes
``--data-mb`` of objects, measures 4 KiB GETs at concurrency 8 for a few seconds (p50/p99,
healthy), then drains storage node s1 through the metadata service (``POST
/v1/nodes/change``) and polls ``GET /v1/rebalance/status`` until s1 holds no copy and
nothing is misplaced, running the same GETs meanwhile (p50/p99 during the move). It
prints the bytes s1 held, the time to drain, the rebalance rate (bytes moved over that
time, in all and per receiving node from their ``objstore_rebalance_bytes_total``) and the
two latency figures. The cluster is stopped and its data dir removed at the end. The
figures are only as steady as the machine is idle.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from metadata.api.client import MetadataClient
from ops.bench.settings import parse_size
from ops.bench_repair import (
    _ms, bench_main, cluster_parts, fill, metric_total, percentile, read_load, s3_client, timed_load,
)
from ops.cli.output import table


async def measure(info: dict[str, Any], data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    secret, meta_addrs, storage = cluster_parts(info, data_dir)
    size = parse_size(args.object_size)
    count = max(1, args.data_mb * 10**6 // size)
    fig: dict[str, Any] = {"objects": count, "object_size": size, "rebalance_rate_mb_s": args.rebalance_rate}
    async with s3_client(info) as client, aiohttp.ClientSession() as session:
        meta = MetadataClient(meta_addrs, secret, session=session, client_id="bench-rebalance")
        small_keys = await fill(client, count, size)
        before = await timed_load(client, small_keys, args.load_seconds)
        nodes = (await meta.list_nodes())["nodes"]
        keys_on = {n["node_id"]: n["keys"] for n in nodes}
        if not keys_on["s1"]:  # e.g. s1 was marked down for the whole fill: a drain would measure nothing
            raise RuntimeError(f"s1 holds no copies to drain: {[(n['node_id'], n['state'], n['keys']) for n in nodes]}")
        fig["drained_node_keys"] = keys_on["s1"]
        stop = asyncio.Event()
        load = asyncio.create_task(read_load(client, small_keys, stop))
        start = time.monotonic()
        await meta.change_node("s1", "drain")
        while True:
            st = await meta.rebalance_status()
            left = {n["node_id"]: n["keys"] for n in (await meta.list_nodes())["nodes"]}["s1"]
            if left == 0 and st["balanced"] and not st["in_flight"] and not st["queued"]:
                break
            if time.monotonic() - start > args.timeout:
                raise RuntimeError(f"not drained after {args.timeout}s: {left} keys left, {st}")
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - start
        stop.set()
        during = await load
        by_node = {nid: await metric_total(session, p["address"], "objstore_rebalance_bytes_total") / 1e6
                   for nid, p in storage.items() if nid != "s1"}
        moved = st["moved_bytes"]
        fig.update(
            moved_mb=moved / 1e6, drain_seconds=elapsed, rebalance_mb_s=moved / elapsed / 1e6,
            moved_mb_by_node=by_node, mb_s_by_node={n: mb / elapsed for n, mb in by_node.items()},
            get_p50_ms_before=_ms(percentile(before["get"], 0.5)), get_p99_ms_before=_ms(percentile(before["get"], 0.99)),
            get_p50_ms_during=_ms(percentile(during["get"], 0.5)), get_p99_ms_during=_ms(percentile(during["get"], 0.99)),
            gets_before=len(before["get"]), gets_during=len(during["get"]),
        )
    return fig


def render(f: dict[str, Any]) -> str:
    def num(v: Any) -> str:
        return "-" if v is None else f"{v:.1f}"

    rows = [
        ("figure", "value"),
        ("objects written", f"{f['objects']} x {f['object_size']} B"),
        ("keys on the drained node", str(f["drained_node_keys"])),
        ("--rebalance-rate per node", f"{f['rebalance_rate_mb_s']:g} MB/s"),
        ("moved", f"{f['moved_mb']:.1f} MB"),
        ("time to drain", f"{num(f['drain_seconds'])} s"),
        ("rebalance rate", f"{num(f['rebalance_mb_s'])} MB/s"),
        ("MB received by node", "  ".join(f"{n} {mb:.0f}" for n, mb in sorted(f["moved_mb_by_node"].items()))),
        ("4 KiB GET p50 / p99 healthy", f"{num(f['get_p50_ms_before'])} / {num(f['get_p99_ms_before'])} ms"),
        ("4 KiB GET p50 / p99 during the drain", f"{num(f['get_p50_ms_during'])} / {num(f['get_p99_ms_during'])} ms"),
    ]
    return table(rows)


def main(argv: list[str] | None = None) -> int:
    return bench_main(argv, "rebalance", __doc__, "--rebalance-rate", 128, measure, render)


if __name__ == "__main__":
    sys.exit(main())
