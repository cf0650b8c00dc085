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
from typing import Any

from ops.cli.cluster import ClusterRef
from ops.cli.output import human_size, table
from ops.cli.repair import BAR_WIDTH, _eta, add_status_parser, leader_status, watch_status


def add_parser(sub: Any) -> None:
    add_status_parser(sub, "rebalance", "moving copies to the ring's owners after a ring change: progress",
                      "objects and bytes misplaced, moved, rate, ETA",
                      "show a progress bar until the cluster is balanced", run)


async def fetch(cluster: ClusterRef) -> dict[str, Any]:
    return await leader_status(cluster, lambda meta: meta.rebalance_status())


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
    return watch_status(args, fetch, render, progress_line, "moved_bytes", lambda st: st["balanced"])
