"""``objstore repair status``: how far the cluster is from full redundancy.

Asks the metadata leader (``GET /v1/repair/status``, with the cluster secret, found as every
admin command finds it: :mod:`ops.cli.cluster`) for the object versions and bytes below
their policy, the repair tasks queued and in flight, what was repaired so far, the rate
over the last minute and the ETA, and prints them as a table. ``--watch`` redraws a
progress bar every ``--interval`` seconds until nothing is below policy (or Ctrl-C);
``--json`` prints the leader's answer as one JSON document.

:func:`render` and :func:`progress_line` are pure.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, Awaitable, Callable

import aiohttp

from metadata.api.client import MetadataClient
from ops.cli.cluster import ClusterRef, add_cluster_arguments, find_cluster
from ops.cli.output import OK, add_json_argument, emit, human_size, table

BAR_WIDTH = 30


def add_parser(sub: Any) -> None:
    add_status_parser(sub, "repair", "re-creating lost copies: objects and bytes below policy, progress",
                      "objects and bytes below policy, in flight, repaired, rate, ETA",
                      "show a progress bar until nothing is below policy", run)


def add_status_parser(sub: Any, name: str, text: str, status_text: str, watch_text: str,
                      run: Callable[[argparse.Namespace], int]) -> None:
    """``objstore NAME status [--watch] [--interval S] [--json]``."""
    p = sub.add_parser(name, help=text)
    actions = p.add_subparsers(dest=f"{name}_action", required=True)
    status = actions.add_parser("status", help=status_text)
    status.add_argument("--watch", action="store_true", help=watch_text)
    status.add_argument("--interval", type=float, default=1.0, help="seconds between updates with --watch")
    add_cluster_arguments(status)
    add_json_argument(status)
    p.set_defaults(func=run)


async def leader_status(cluster: ClusterRef, ask: Callable[[MetadataClient], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        return await ask(MetadataClient(list(cluster.metadata), cluster.secret, session=session, tls=cluster.tls()))


async def fetch(cluster: ClusterRef) -> dict[str, Any]:
    return await leader_status(cluster, lambda meta: meta.repair_status())


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def render(st: dict[str, Any]) -> str:
    rows = [
        ("", "OBJECTS", "BYTES"),
        ("below policy", str(st["objects_below_policy"]), human_size(st["bytes_below_policy"])),
        ("in flight", str(st["in_flight"]), human_size(st["in_flight_bytes"])),
        ("queued", str(st["queued"]), "-"),
        ("repaired", str(st["repaired_objects"]), human_size(st["repaired_bytes"])),
    ]
    return (table(rows) + f"\nrate {human_size(st['rate_bytes_per_second'])}/s   ETA {_eta(st['eta_seconds'])}"
            f"   failed tasks {st['failed_tasks']}   damaged copies reported {st['damaged_copies']}")


def progress_line(st: dict[str, Any], start_bytes: int) -> str:
    """One line: a bar of the bytes repaired since ``start_bytes`` were below policy."""
    left = st["bytes_below_policy"]
    total = max(start_bytes, left, 1)
    done = (total - left) / total if start_bytes or left else 1.0
    filled = int(round(done * BAR_WIDTH))
    return (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done:5.1f}%  "
            f"{st['objects_below_policy']} objects / {human_size(left)} below policy  "
            f"{human_size(st['rate_bytes_per_second'])}/s  ETA {_eta(st['eta_seconds'])}")


def run(args: argparse.Namespace) -> int:
    return watch_status(args, fetch, render, progress_line, "bytes_below_policy",
                        lambda st: not st["objects_below_policy"])


def watch_status(args: argparse.Namespace, fetch: Callable[[ClusterRef], Awaitable[dict[str, Any]]],
                 render: Callable[[dict[str, Any]], str], progress: Callable[[dict[str, Any], int], str],
                 start_field: str, finished: Callable[[dict[str, Any]], bool]) -> int:
    """A status command: print the leader's answer once, or with ``--watch`` a progress line
    (``progress(status, status[start_field] at the start)``) until ``finished(status)``."""
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
    start = st[start_field]
    while True:
        done = finished(st)
        if args.json:
            emit(args, st, render)
        else:
            print("\r" + progress(st, start), end="\n" if done else "", file=sys.stdout, flush=True)
        if done:
            return OK
        time.sleep(max(args.interval, 0.1))
        st = get()
