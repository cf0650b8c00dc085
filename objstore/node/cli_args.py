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
    p.add_argument("--segment-bytes", type=int, help="size at which a segment file is sealed (default 256 MiB)")
    add_reclaim_arguments(p)
    p.add_argument("--repair-rate", type=float,
                   help="MB/s this node receives to re-create lost copies (default 20; 0: no repair)")
    add_flag_table(p, REBALANCE_FLAGS)
    p.add_argument("--join", action="store_true", default=None,
                   help="register as joining: outside the ring until `objstore node add` puts it in")


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


# Rebalancing's pacing: flag -> StorageConfig field (also a flag of ``objstore up``).
REBALANCE_FLAGS: FlagTable = {
    "--rebalance-rate": ("rebalance_rate", float,
                         "MB/s each storage node receives for rebalancing moves (default 20)"),
}


# Segment compaction's pacing and trigger: flag -> StorageConfig field (also flags of ``objstore up``).
COMPACTION_FLAGS: FlagTable = {
    "--compaction-rate": ("compaction_rate", float,
                          "MB/s of live data each storage node copies when compacting segments (default 64; "
                          "0: no limit)"),
    "--compaction-threshold": ("compaction_threshold", float,
                               "a sealed segment whose live fraction falls below this is rewritten "
                               "(default 0.5; in (0, 1])"),
}


def add_reclaim_arguments(p: argparse.ArgumentParser) -> None:
    """The space-reclaiming flags (also on ``objstore up``, which passes them on)."""
    p.add_argument("--compaction-interval", type=float,
                   help="seconds between segment compaction checks (default 60; 0: off)")
    add_flag_table(p, COMPACTION_FLAGS)
    p.add_argument("--gc-interval", type=float, help="seconds between garbage-collection passes (default 600; 0: off)")
    p.add_argument("--gc-grace", type=float,
                   help="unreferenced blobs younger than this many seconds are kept (default 3600)")


def reclaim_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """The reclaiming flags given in ``args``, as command-line arguments again."""
    out: list[str] = []
    for name in ("compaction_interval", "gc_interval", "gc_grace"):
        value = getattr(args, name, None)
        if value is not None:
            out += ["--" + name.replace("_", "-"), repr(value)]
    return tuple(out) + flag_table_argv(args, COMPACTION_FLAGS)


def config_from_args(args: argparse.Namespace) -> StorageConfig:
    """The validated StorageConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(StorageConfig, args, {
        "node_id": args.node_id, "data_dir": args.data_dir, "zone": args.zone, "weight": args.weight,
        "capacity_bytes": args.capacity_bytes, "reserve_bytes": args.reserve_bytes,
        "metadata": csv_tuple(args.metadata), "advertise": args.advertise,
        "heartbeat_interval": args.heartbeat_interval,
        **flag_table_values(args, SCRUB_FLAGS), **flag_table_values(args, REBALANCE_FLAGS),
        "repair_rate": args.repair_rate,
        "segment_bytes": args.segment_bytes, "compaction_interval": args.compaction_interval,
        "gc_interval": args.gc_interval, "gc_grace": args.gc_grace, "join": args.join,
        **flag_table_values(args, COMPACTION_FLAGS),
    })
