"""``objstore rebalance status``: how far the placements are from the ring's.

Asks the metadata leader (``GET /v1/rebalance/status``) for the objects and bytes known
misplaced (complete once the leader's walk of the index is done: its progress is shown),
the moves queued and in flight, what was moved so far, the rate over the last minute and
the ETA. ``--watch`` redraws a progress bar every ``--interval`` seconds until the cluster
is balanced (or Ctrl-C); ``--json`` prints the leader's answer.

:func:`render` and :func:`progress_line` are pure.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp

from metadata.api.client import MetadataClient
from ops.cli.cluster import ClusterRef, add_cluster_arguments, find_cluster
from ops.cli.output import OK, add_json_argument, emit, human_size, table
from ops.cli.repair import BAR_WIDTH, _eta


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rebalance", help="moving copies to the ring's owners after a ring change: progress")
    actions = p.add_subparsers(dest="rebalance_action", required=True)
    status = actions.add_parser("status", help="objects and bytes misplaced, moved, rate, ETA")
    status.add_argument("--watch", action="store_true", help="show a progress bar until the cluster is balanced")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between updates with --watch")
    add_cluster_arguments(status)
    add_json_argument(status)
    p.set_defaults(func=run)


async def fetch(cluster: ClusterRef) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        meta = MetadataClient(list(cluster.metadata), cluster.secret, session=session, tls=cluster.tls())
        return await meta.rebalance_status()


def _walk(st: dict[str, Any]) -> str:
    w = st["walk"]
    return "done" if w["done"] else f"{w['keys_walked']} of {w['keys_total']} keys"


def render(st: dict[str, Any]) -> str:
    rows = [
        ("", "OBJECTS", "BYTES"),
        ("misplaced", str(st["objects_misplaced"]), human_size(st["bytes_misplaced"])),
        ("in flight", str(st["in_flight"]), "-"),
        ("queued", str(st["queued"]), "-"),
        ("moved", str(st["moved_objects"]), human_size(st["moved_bytes"])),
    ]
    return (table(rows) + f"\nrate {human_size(st['rate_bytes_per_second'])}/s   ETA {_eta(st['eta_seconds'])}"
            f"   index walk {_walk(st)}   {'balanced' if st['balanced'] else 'rebalancing'}")


def progress_line(st: dict[str, Any], start_moved: int) -> str:
    """One line: a bar of the bytes moved since the watch began over those plus what is left."""
    moved = st["moved_bytes"] - start_moved
    left = st["bytes_misplaced"]
    done = moved / (moved + left) if moved + left else 1.0
    filled = int(round(done * BAR_WIDTH))
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done:5.1f}%  "
            f"{st['objects_misplaced']} objects / {human_size(left)} misplaced  "
            f"{human_size(st['rate_bytes_per_second'])}/s  ETA {_eta(st['eta_seconds'])}  walk {_walk(st)}")


def run(args: argparse.Namespace) -> int:
    cluster = find_cluster(args)

    def get() -> dict[str, Any]:
        try:
            return asyncio.run(fetch(cluster))
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
            raise cluster.unreachable(exc) from None

    st = get()
    if not args.watch:
        emit(args, st, render)
        return OK
    start = st["moved_bytes"]
    while True:
        if args.json:
            emit(args, st, render)
        else:
            print("\r" + progress_line(st, start), end="\n" if st["balanced"] else "", file=sys.stdout, flush=True)
        if st["balanced"]:
            return OK
        time.sleep(max(args.interval, 0.1))
        st = get()
