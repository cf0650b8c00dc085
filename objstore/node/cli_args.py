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
    p.add_argument("--segment-bytes", type=int, help="size at which a segment file is sealed (default 256 MiB)")
    add_reclaim_arguments(p)


def add_reclaim_arguments(p: argparse.ArgumentParser) -> None:
    """The space-reclaiming flags (also on ``objstore up``, which passes them on)."""
    p.add_argument("--compaction-interval", type=float,
                   help="seconds between segment compaction checks (default 60; 0: off)")
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
    return tuple(out)


def config_from_args(args: argparse.Namespace) -> StorageConfig:
    """The validated StorageConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(StorageConfig, args, {
        "node_id": args.node_id, "data_dir": args.data_dir, "zone": args.zone, "weight": args.weight,
        "capacity_bytes": args.capacity_bytes, "metadata": csv_tuple(args.metadata), "advertise": args.advertise,
        "segment_bytes": args.segment_bytes, "compaction_interval": args.compaction_interval,
        "gc_interval": args.gc_interval, "gc_grace": args.gc_grace,
    })
