"""``objstore repair status``: how far the cluster is from full redundancy.

Asks the metadata leader (``GET /v1/repair/status``, with the cluster secret, found as every
admin command finds it: :mod:`ops.cli.cluster`) for the object versions and bytes below
their policy, the repair tasks queued and in flight, what was repaired so far, the rate
over the last minute and the ETA, and prints them as a table. ``--watch`` first waits until
nothing is below policy (or Ctrl-C), redrawing a progress bar on stderr every ``--interval``
seconds when stderr is a terminal; ``--json`` prints the leader's answer as one JSON document.

:func:`render` and :func:`progress_line` are pure.
"""
from __future__ import annotations

import argparse
import asyncio
from typing import Any, Awaitable, Callable

import aiohttp

from metadata.api.client import MetadataClient
from ops.cli.cluster import ClusterRef, add_cluster_arguments, find_cluster
from ops.cli.output import (OK, ProgressBar, Step, add_json_argument, bar_line, emit, eta_text, human_size,
                            paint, table, watch_until)


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


def render(st: dict[str, Any]) -> str:
    rows = [
        ("", "OBJECTS", "BYTES"),
        ("below policy", paint(str(st["objects_below_policy"]), "red" if st["objects_below_policy"] else "green"),
         human_size(st["bytes_below_policy"])),
        ("in flight", str(st["in_flight"]), human_size(st["in_flight_bytes"])),
        ("queued", str(st["queued"]), "-"),
        ("repaired", str(st["repaired_objects"]), human_size(st["repaired_bytes"])),
    ]
    parts = st.get("upload_parts_below_policy", 0)
    also = f"\nparts of multipart uploads in progress below policy: {paint(str(parts), 'red')}" if parts else ""
    return (table(rows) + f"\nrate {human_size(st['rate_bytes_per_second'])}/s   ETA {eta_text(st['eta_seconds'])}"
            f"   failed tasks {st['failed_tasks']}   damaged copies reported {st['damaged_copies']}" + also)


def progress_line(st: dict[str, Any], start_bytes: int) -> str:
    """One line: a bar of the bytes repaired since ``start_bytes`` were below policy."""
    s = step(st, start_bytes)
    return bar_line(s.done, s.total, s.rate, extra=s.extra)


def step(st: dict[str, Any], start_bytes: int) -> Step:
    """Bytes repaired of those below policy (at least ``start_bytes``), the leader's rate."""
    left = st["bytes_below_policy"]
    total = max(start_bytes, left)
    done, total = (total - left, total) if total else (1, 1)
    return Step(done, total, st["rate_bytes_per_second"],
                f"{st['objects_below_policy']} objects / {human_size(left)} below policy")


def run(args: argparse.Namespace) -> int:
    return watch_status(args, fetch, render, step, "bytes_below_policy",
                        lambda st: not st["objects_below_policy"] and not st.get("upload_parts_below_policy"),
                        "repair")


def watch_status(args: argparse.Namespace, fetch: Callable[[ClusterRef], Awaitable[dict[str, Any]]],
                 render: Callable[[dict[str, Any]], str], step: Callable[[dict[str, Any], int], Step],
                 start_field: str, finished: Callable[[dict[str, Any]], bool], label: str) -> int:
    """A status command: print the leader's answer; with ``--watch``, first wait until
    ``finished(status)``, drawing ``step(status, status[start_field] at the start)`` on a
    progress bar (:func:`ops.cli.output.watch_until`)."""
    cluster = find_cluster(args)

    def get() -> dict[str, Any]:
        try:
            return asyncio.run(fetch(cluster))
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
            raise cluster.unreachable(exc) from None

    st = get()
    if args.watch:
        start = st[start_field]
        st = watch_until(st, get, finished, lambda s: step(s, start), args.interval, ProgressBar(label=label))
    emit(args, st, render)
    return OK
