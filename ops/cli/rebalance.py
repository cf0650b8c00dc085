"""``objstore rebalance status``: how far the placements are from the ring's.

Asks the metadata leader (``GET /v1/rebalance/status``) for the objects and bytes known
misplaced (complete once the leader's walk of the index is done: its progress is shown),
the moves queued and in flight, what was moved so far, the rate over the last minute and
the ETA. ``--watch`` first waits until the cluster is balanced (or Ctrl-C), redrawing a
progress bar on stderr every ``--interval`` seconds when stderr is a terminal (as
``objstore repair status --watch``); ``--json`` prints the leader's answer.

:func:`render` and :func:`step` are pure.
"""
from __future__ import annotations

import argparse
from typing import Any

from ops.cli.cluster import ClusterRef
from ops.cli.output import Step, eta_text, human_size, table
from ops.cli.repair import add_status_parser, leader_status, watch_status


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
        ("upload parts to move", str(st.get("upload_parts_misplaced", 0)), "-"),
        ("in flight", str(st["in_flight"]), "-"),
        ("queued", str(st["queued"]), "-"),
        ("moved", str(st["moved_objects"]), human_size(st["moved_bytes"])),
    ]
    return (table(rows) + f"\nrate {human_size(st['rate_bytes_per_second'])}/s   ETA {eta_text(st['eta_seconds'])}"
            f"   index walk {_walk(st)}   {'balanced' if st['balanced'] else 'rebalancing'}")


def step(st: dict[str, Any], start_moved: int) -> Step:
    """Bytes moved since the watch began, of those plus what is left misplaced; the leader's rate."""
    moved = st["moved_bytes"] - start_moved
    total = moved + st["bytes_misplaced"]
    done, total = (moved, total) if total else (1, 1)
    return Step(done, total, st["rate_bytes_per_second"],
                f"{st['objects_misplaced']} objects / {human_size(st['bytes_misplaced'])} misplaced, walk {_walk(st)}")


def run(args: argparse.Namespace) -> int:
    return watch_status(args, fetch, render, step, "moved_bytes", lambda st: st["balanced"], "rebalance")
