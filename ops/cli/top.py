"""``objstore top`` (= ``objstore status --watch``): a live view of the cluster, redrawn in place.

Every ``--interval`` seconds (default 2) it collects what ``objstore status`` collects
(:func:`ops.cli.status.collect`: metadata, nodes, health), the leader's repair status, and
the gateways' ``/metrics`` (addresses from ``--gateway`` or ``cluster.json``; bearer token
from ``--metrics-token-file`` or env OBJSTORE_METRICS_TOKEN), and shows: requests/s, errors/s,
p50/p99 latency and throughput over the last interval (:mod:`ops.cli.live_figures`), the
busiest operations, the Raft leader, term and commit index, objects below policy and repair
progress, and one row per storage node.

On a terminal each frame replaces the previous one (cursor home, lines cleared, cursor hidden
until exit); piped, frames follow one another separated by a blank line, and with ``--json``
each frame is one JSON document on one line. Ctrl-C ends the view with exit code 0 (the
last frame stays on screen); ``--count N`` ends it after N frames with the last frame's
``status`` exit code (0 healthy, 1 degraded, 2 unavailable). A cluster that stops
answering is shown as unavailable in the frame; the view goes on.

:func:`render` is pure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, Callable, TextIO

import aiohttp

from metadata.api.client import MetadataClient
from objstore.cli_args import metrics_token_of
from objstore.errors import ObjstoreError
from objstore.tls import base_url, request_ssl
from ops.cli import live_figures, status
from ops.cli.cluster import ClusterRef, add_cluster_arguments, find_cluster
from ops.cli.output import OK, UNAVAILABLE, colour, colour_wanted, eta_text, human_size, paint, state, table

HIDE_CURSOR, SHOW_CURSOR, HOME, CLEAR_LINE, CLEAR_BELOW, CLEAR_SCREEN = (
    "\x1b[?25l", "\x1b[?25h", "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J")
TOP_OPS = 5


def add_parser(sub: Any) -> None:
    p = sub.add_parser("top", help="a live view of the cluster (= status --watch): requests/s, latency, nodes, "
                                   "Raft, redundancy")
    add_cluster_arguments(p)
    status.add_watch_arguments(p, with_watch=False)
    p.add_argument("--json", action="store_true", help="print each frame as one JSON document per line")
    p.set_defaults(func=run)


async def _scrape(session: aiohttp.ClientSession, addrs: list[str], cluster: ClusterRef,
                  token: str | None) -> list[str]:
    tls = cluster.tls()
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def one(addr: str) -> str:
        try:
            async with session.get(base_url(addr, tls) + "/metrics", headers=headers, ssl=request_ssl(tls)) as r:
                return await r.text() if r.status == 200 else ""
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return ""

    return [t for t in await asyncio.gather(*(one(a) for a in addrs)) if t]


async def collect_frame(cluster: ClusterRef, gateways: list[str], token: str | None,
                        prev: live_figures.Scrape | None, clock: Callable[[], float] = time.monotonic,
                        ) -> tuple[dict[str, Any], live_figures.Scrape | None]:
    """One frame's figures (``health.code`` the status exit code) and this scrape of the gateways."""
    frame: dict[str, Any] = {"time": time.time()}
    try:
        st = await status.collect(list(cluster.metadata), cluster.secret, cluster.tls())
        code, problems = status.assess(st)
        frame.update(st)
        frame["health"] = {"state": "healthy" if code == OK else "degraded", "problems": problems, "code": code}
    except Exception as exc:  # noqa: BLE001 - shown in the frame; the view goes on
        frame["health"] = {"state": "unavailable", "code": UNAVAILABLE,
                           "problems": [cluster.unreachable(exc).message]}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        if frame["health"]["code"] != UNAVAILABLE:
            meta = MetadataClient(list(cluster.metadata), cluster.secret, session=session, tls=cluster.tls(),
                                  deadline=3.0)
            try:
                frame["repair"] = await meta.repair_status()
            except ObjstoreError:
                frame["repair"] = None
        texts = await _scrape(session, gateways, cluster, token) if gateways else []
    scrape = live_figures.parse(texts, clock()) if texts else None
    frame["gateway"] = (live_figures.figures(prev, scrape) or None) if prev and scrape else None
    frame["gateways"] = {"known": len(gateways), "answered": len(texts)}
    return frame, scrape


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}/s"


def render(frame: dict[str, Any], interval: float = 2.0) -> str:
    """The screen of one frame (plain text; painted when colour is on)."""
    health = frame["health"]
    stamp = time.strftime("%H:%M:%S", time.localtime(frame["time"]))
    lines = [paint("objstore top", "bold") + f"   {stamp}   every {interval:g}s   Ctrl-C to quit",
             f"health     {state(health['state'])}"]
    lines += [f"  - {paint(p, 'yellow')}" for p in health["problems"]]
    gw, seen = frame.get("gateway"), frame.get("gateways", {})
    if gw:
        errors = paint(_rate(gw["errors_per_s"]), "red" if gw["errors_per_s"] else None)
        lines.append(f"requests   {_rate(gw['requests_per_s'])}   errors {errors}"
                     f"   p50 {_ms(gw['p50_ms'])}   p99 {_ms(gw['p99_ms'])}   in {human_size(gw['bytes_in_per_s'])}/s"
                     f"   out {human_size(gw['bytes_out_per_s'])}/s   in flight {gw['in_flight']:.0f}")
    elif seen.get("known"):
        answered = seen.get("answered", 0)
        hint = "" if answered else "; if /metrics needs a token, pass --metrics-token-file"
        lines.append(f"requests   measuring... ({answered} of {seen['known']} gateways answered /metrics{hint})")
    else:
        lines.append("requests   - (no gateway known: pass --gateway HOST:PORT)")
    if "metadata" not in frame:
        return "\n".join(lines)
    m = frame["metadata"]
    members = m.get("members_reachable", {})
    lines.append(f"raft       leader {m.get('leader') or '?'}  term {m.get('term', '-')}  "
                 f"commit {m.get('commit_index', '-')}  applied {m.get('applied_index', '-')}  members {sum(members.values())}/{len(members)} reachable")
    below = m.get("objects_below_policy")
    lines.append(f"redundancy {paint(str(below if below is not None else '-'), 'red' if below else 'green')} objects "
                 f"below policy ({human_size(m.get('bytes_below_policy'))})" + _repair_text(frame.get("repair")))
    lines.append(f"objects    {m.get('objects', '-')}  buckets {m.get('buckets', '-')}  "
                 f"ring epoch {frame['ring_epoch']}")
    if gw and gw["ops"]:
        rows = [("OPERATION", "REQ/S", "P50", "P99")]
        rows += [(op, f"{f['requests_per_s']:.1f}", _ms(f["p50_ms"]), _ms(f["p99_ms"]))
                 for op, f in list(gw["ops"].items())[:TOP_OPS]]
        lines += ["", table(rows, right={1, 2, 3})]
    rows = [("NODE", "ADDRESS", "ZONE", "STATE", "BLOBS", "USED", "FREE", "HEARTBEAT", "SCRUB")]
    for n in frame["nodes"]:
        node_state = n["state"] if n["reachable"] else f"{n['state']} (unreachable)"
        scrub = (n.get("scrub") or {}).get("state", "-")
        rows.append((n["node_id"], n["address"], n["zone"], state(node_state),
                     "-" if n["blob_count"] is None else str(n["blob_count"]), human_size(n["used_bytes"]),
                     human_size(n.get("free_bytes")), status.age(n.get("heartbeat_age")), scrub))
    return "\n".join(lines + ["", table(rows, right={4, 5, 6})])


def _repair_text(r: dict[str, Any] | None) -> str:
    if not r:
        return ""
    return (f"   repair: {r['in_flight']} in flight, {r['queued']} queued, {r['repaired_objects']} repaired, "
            f"{human_size(r['rate_bytes_per_second'])}/s, ETA {eta_text(r['eta_seconds'])}")


def draw(out: TextIO, text: str, tty: bool, first: bool) -> None:
    """Write one frame: over the previous one on a terminal, else after it."""
    if tty:
        body = "".join(line + CLEAR_LINE + "\n" for line in text.split("\n"))
        out.write((HIDE_CURSOR + CLEAR_SCREEN if first else "") + HOME + body + CLEAR_BELOW)
    else:
        out.write(("" if first else "\n") + text + "\n")
    out.flush()


async def watch(cluster: ClusterRef, args: argparse.Namespace, out: TextIO) -> int:
    """Draw frames until ``--count`` frames were drawn (then the last frame's exit code)."""
    gateways = list(cluster.gateways)
    token = metrics_token_of(args)
    tty = out.isatty() and not args.json
    prev = None
    frames = 0
    code = OK
    interval = max(args.interval, 0.2)
    while True:
        started = time.monotonic()
        frame, scrape = await collect_frame(cluster, gateways, token, prev)
        prev = scrape or prev
        code = frame["health"]["code"]
        if args.json:
            out.write(json.dumps(frame) + "\n")
            out.flush()
        else:
            with colour(tty and colour_wanted(out)):
                draw(out, render(frame, interval), tty, first=frames == 0)
        frames += 1
        if args.count and frames >= args.count:
            return code
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def run(args: argparse.Namespace) -> int:
    cluster = find_cluster(args)
    out = sys.stdout
    try:
        return asyncio.run(watch(cluster, args, out))
    except KeyboardInterrupt:
        return OK  # Ctrl-C is how a live view ends
    finally:
        if out.isatty() and not args.json:
            out.write(SHOW_CURSOR)
            out.flush()
