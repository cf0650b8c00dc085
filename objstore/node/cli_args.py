"""The storage node's command-line flags (``objstore storage``, ``python -m objstore.node``)."""
from __future__ import annotations

import argparse

from objstore.cli_args import (
    FlagTable,
    add_config_argument,
    add_flag_table,
    add_listen_arguments,
    csv_tuple,
    flag_table_argv,
    flag_table_values,
    load_from_args,
)
from objstore.config import StorageConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the storage node's flags on ``p``."""
    add_config_argument(p, "StorageConfig")
    p.add_argument("--node-id")
    p.add_argument("--data-dir")
    add_listen_arguments(p)
    p.add_argument("--zone")
    p.add_argument("--weight", type=float)
    p.add_argument("--capacity-bytes", type=int,
                   help="act as if the disk ended after this many bytes (default: the filesystem's size)")
    p.add_argument("--reserve-bytes", type=int,
                   help="free space new blobs must leave, for deletes (default: min(5%% of capacity, 1 GiB))")
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--advertise", help="host:port others reach this node at")
    p.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats to the metadata leader (default 1)")
    add_scrub_arguments(p)
    p.add_argument("--repair-rate", type=float,
                   help="MB/s this node receives to re-create lost copies (default 20; 0: no repair)")


# The scrubber's pacing: flag -> StorageConfig field (also flags of ``objstore up``).
SCRUB_FLAGS: FlagTable = {
    "--scrub-rate": ("scrub_rate", float, "MB/s each storage node re-reads its blobs at to verify them (default 20)"),
    "--scrub-interval": ("scrub_interval", float,
                         "seconds from the start of one scrub pass to the next (default 86400: a pass a day, "
                         "back to back when a pass takes longer)"),
}


def add_scrub_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the scrubber's flags (:data:`SCRUB_FLAGS`) on ``p``."""
    add_flag_table(p, SCRUB_FLAGS)


def scrub_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """The scrub flags given in ``args``, as storage node command-line arguments."""
    return flag_table_argv(args, SCRUB_FLAGS)


def config_from_args(args: argparse.Namespace) -> StorageConfig:
    """The validated StorageConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(StorageConfig, args, {
        "node_id": args.node_id, "data_dir": args.data_dir, "zone": args.zone, "weight": args.weight,
        "capacity_bytes": args.capacity_bytes, "reserve_bytes": args.reserve_bytes,
        "metadata": csv_tuple(args.metadata), "advertise": args.advertise,
        "heartbeat_interval": args.heartbeat_interval,
        **flag_table_values(args, SCRUB_FLAGS),
        "repair_rate": args.repair_rate,
    })
