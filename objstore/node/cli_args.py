"""The storage node's command-line flags (``objstore storage``, ``python -m objstore.node``)."""
from __future__ import annotations

import argparse

from objstore.cli_args import add_config_argument, add_listen_arguments, csv_tuple, load_from_args
from objstore.config import StorageConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the storage node's flags on ``p``."""
    add_config_argument(p, "StorageConfig")
    p.add_argument("--node-id")
    p.add_argument("--data-dir")
    add_listen_arguments(p)
    p.add_argument("--zone")
    p.add_argument("--weight", type=float)
    p.add_argument("--capacity-bytes", type=int)
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--advertise", help="host:port others reach this node at")
    add_scrub_arguments(p)


# The scrubber's pacing: flag -> StorageConfig field (also flags of ``objstore up``).
SCRUB_FLAGS = {
    "--scrub-rate": ("scrub_rate", float, "MB/s each storage node re-reads its blobs at to verify them (default 20)"),
    "--scrub-interval": ("scrub_interval", float,
                         "seconds from the start of one scrub pass to the next (default 86400: a pass a day, "
                         "back to back when a pass takes longer)"),
}


def add_scrub_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the scrubber's flags (:data:`SCRUB_FLAGS`) on ``p``."""
    for flag, (dest, kind, help_text) in SCRUB_FLAGS.items():
        p.add_argument(flag, dest=dest, type=kind, help=help_text)


def scrub_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """The scrub flags given in ``args``, as storage node command-line arguments."""
    return tuple(a for flag, (dest, _, _) in SCRUB_FLAGS.items() if getattr(args, dest) is not None
                 for a in (flag, str(getattr(args, dest))))


def config_from_args(args: argparse.Namespace) -> StorageConfig:
    """The validated StorageConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(StorageConfig, args, {
        "node_id": args.node_id, "data_dir": args.data_dir, "zone": args.zone, "weight": args.weight,
        "capacity_bytes": args.capacity_bytes, "metadata": csv_tuple(args.metadata), "advertise": args.advertise,
        **{dest: getattr(args, dest) for dest, _, _ in SCRUB_FLAGS.values()},
    })
