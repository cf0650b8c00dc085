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
    p.add_argument("--repair-rate", type=float,
                   help="MB/s this node receives to re-create lost copies (default 20; 0: no repair)")


def config_from_args(args: argparse.Namespace) -> StorageConfig:
    """The validated StorageConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(StorageConfig, args, {
        "node_id": args.node_id, "data_dir": args.data_dir, "zone": args.zone, "weight": args.weight,
        "capacity_bytes": args.capacity_bytes, "metadata": csv_tuple(args.metadata), "advertise": args.advertise,
        "repair_rate": args.repair_rate,
    })
