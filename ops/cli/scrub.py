"""``objstore scrub start|status [NODE]``: a storage node's scrubber, now.

NODE is a storage node id, looked up in the cluster map (the cluster is found as every
admin command finds it: :mod:`ops.cli.cluster`). ``status`` shows one row per node (every
node when NODE is left out): state, progress of the running pass, when the last full pass
ended, bytes verified, corrupt blobs found, repaired, quarantined. ``start NODE`` starts a
pass on that node now; with ``--wait`` it shows a progress bar (rate, ETA) on stderr (a
terminal only) until that pass ends, then the node's status. ``--json`` prints the status documents instead.

:func:`progress_line` and :func:`render` are pure.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, Callable

import aiohttp

from metadata.api.client import MetadataClient
from objstore.errors import ObjstoreError
from objstore.node.client import StorageClient
from ops.cli.cluster import ClusterRef, add_cluster_arguments, find_cluster
from ops.cli.output import (BAR_WIDTH, OK, USAGE, CommandError, ProgressBar, add_json_argument, bar_line, emit,
                            human_size, paint, state, table)

POLL_SECONDS = 0.5


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scrub", help="a storage node's scrubber: start a pass now, or show its progress")
    actions = p.add_subparsers(dest="scrub_action", required=True)
    start = actions.add_parser("start", help="start a scrub pass on a node now")
    start.add_argument("node", metavar="NODE", help="storage node id (as `objstore status` shows it)")
    start.add_argument("--wait", action="store_true", help="show progress until the pass ends")
    start.add_argument("--timeout", type=float, default=0.0, help="with --wait: give up after this many seconds "
                       "(default 0: wait as long as the pass takes)")
    status = actions.add_parser("status", help="show the scrubber of a node (or of every node)")
    status.add_argument("node", metavar="NODE", nargs="?", help="storage node id (default: every node)")
    for q in (start, status):
        add_cluster_arguments(q)
        add_json_argument(q)
    p.set_defaults(func=run)


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    s = max(0.0, now - ts)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def render(statuses: list[dict[str, Any]], now: float | None = None) -> str:
    """One row per node's scrub status (a node that did not answer has ``error``)."""
    now = time.time() if now is None else now
    rows = [("NODE", "STATE", "PASS", "LAST FULL PASS", "VERIFIED", "CORRUPT", "REPAIRED", "QUARANTINED", "RATE")]
    for s in statuses:
        if "error" in s:
            rows.append((s["node_id"], state("unreachable"), "-", "-", "-", "-", "-", "-", "-"))
            continue
        p = s.get("pass")
        progress = (f"{100 * p['progress']:.1f}% of {human_size(p['bytes_total'])}" if p else "-")
        rows.append((s["node_id"], state(s["state"]), progress, _ago(s.get("last_full_pass"), now),
                     human_size(s["bytes_verified"]),
                     paint(str(s["corrupt_found"]), "red" if s["corrupt_found"] else None),
                     str(s["repaired"]), str(s["quarantined"]), f"{human_size(s['rate_bytes_per_s'])}/s"))
    return table(rows)


def progress_line(p: dict[str, Any], limit: float = 0.0, width: int = BAR_WIDTH) -> str:
    """A bar for a pass in progress: share done, bytes, rate so far and time left. The rate
    is the pass's average, at most ``limit`` (the node's --scrub-rate; its first burst would
    otherwise promise far too early an end)."""
    return bar_line(p["bytes_done"], p["bytes_total"], _pass_rate(p, limit), width=width, extra=_blobs(p))


def _pass_rate(p: dict[str, Any], limit: float) -> float | None:
    """The pass's average rate, at most ``limit`` (0: no bound); None before any progress."""
    rate = p["bytes_done"] / p["elapsed"] if p["elapsed"] > 0 else 0.0
    return (min(rate, limit) if limit > 0 else rate) or None


def _blobs(p: dict[str, Any]) -> str:
    return f"{p['blobs_done']}/{p['blobs_total']} blobs"


async def _addresses(meta: MetadataClient, node: str | None) -> list[tuple[str, str]]:
    cmap = await meta.get_cluster_map()
    if node is None:
        return [(n.node_id, n.address) for n in cmap.nodes]
    info = cmap.node(node)
    if info is None:
        known = ", ".join(n.node_id for n in cmap.nodes) or "none"
        raise CommandError(f"no storage node {node!r} in the cluster map (nodes: {known})", USAGE)
    return [(info.node_id, info.address)]


async def wait_for_pass(storage: StorageClient, address: str, pass_id: int, bar: ProgressBar,
                        timeout: float = 0.0, clock: Callable[[], float] = time.monotonic,
                        sleep: Callable[[float], Any] = asyncio.sleep) -> dict[str, Any]:
    """Poll the node until pass ``pass_id`` has ended, drawing its progress on ``bar`` (a
    terminal only); returns the node's status. Raises CommandError after ``timeout`` seconds
    (0: never)."""
    deadline = clock() + timeout if timeout > 0 else None
    with bar:
        while True:
            status = await storage.scrub_status(address)
            if status["passes_completed"] >= pass_id:
                return status
            p = status.get("pass")
            if p is not None:
                bar.update(p["bytes_done"], p["bytes_total"], _pass_rate(p, status.get("rate_bytes_per_s") or 0.0),
                           extra=_blobs(p))
            if deadline is not None and clock() > deadline:
                raise CommandError(f"the scrub pass did not end in {timeout:g}s; it goes on "
                                   "(see `objstore scrub status`)")
            await sleep(POLL_SECONDS)


async def collect(cluster: ClusterRef, args: argparse.Namespace) -> Any:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        tls = cluster.tls()
        meta = MetadataClient(list(cluster.metadata), cluster.secret, session=session, tls=tls)
        storage = StorageClient(session, cluster.secret, tls=tls)
        nodes = await _addresses(meta, args.node)
        if args.scrub_action == "start":
            node_id, address = nodes[0]
            try:
                started = await storage.scrub_start(address)
                if not args.wait:
                    return [started["status"]]
                print(f"scrub pass {started['pass_id']} on {node_id} started", file=sys.stderr, flush=True)
                bar = ProgressBar(label=f"scrub {node_id}")
                return [await wait_for_pass(storage, address, started["pass_id"], bar, args.timeout)]
            except ObjstoreError as exc:
                raise CommandError(f"storage node {node_id} at {address}: {exc.message}") from None

        async def one(node_id: str, address: str) -> dict[str, Any]:
            try:
                return await storage.scrub_status(address)
            except Exception as exc:  # noqa: BLE001 - a node that does not answer is shown as such
                return {"node_id": node_id, "error": str(exc)}

        return list(await asyncio.gather(*(one(n, a) for n, a in nodes)))


def run(args: argparse.Namespace) -> int:
    cluster = find_cluster(args)
    try:
        statuses = asyncio.run(collect(cluster, args))
    except CommandError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
        raise cluster.unreachable(exc) from None
    one = args.node is not None
    emit(args, statuses[0] if one else statuses, lambda r: render([r] if one else r))
    return OK
