"""The metadata node's command-line flags (``objstore metadata``, ``python -m metadata``).

The Raft flags are declared here and nowhere else.
"""
from __future__ import annotations

import argparse

from objstore.cli_args import add_config_argument, add_listen_arguments, csv_tuple, load_from_args
from objstore.config import MetadataConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the metadata node's flags, the Raft ones included, on ``p``."""
    add_config_argument(p, "MetadataConfig")
    p.add_argument("--node-id")
    p.add_argument("--data-dir")
    add_listen_arguments(p)
    p.add_argument("--peers", help="comma-separated id=host:port of every metadata node (a Raft group)")
    p.add_argument("--default-policy")
    p.add_argument("--snapshot-every", type=int,
                   help="log entries between snapshots (default 10000; an eighth of the object keys when more)")
    p.add_argument("--join", action="store_true", default=None,
                   help="start empty and wait to be added to a running group (objstore metadata add)")
    p.add_argument("--enable-fault-injection", action="store_true", default=None,
                   help="serve POST /debug/partition and honour X-Objstore-Debug-Stale-Read (tests only)")
    p.add_argument("--tick-ms", type=int, help="Raft tick in milliseconds (default 50)")
    p.add_argument("--election-ticks", type=int, help="election timeout in ticks, randomized up to twice (default 12)")
    p.add_argument("--heartbeat-ticks", type=int, help="heartbeat interval in ticks (default 2)")
    p.add_argument("--log-segment-bytes", type=int, help="size of one log segment file (default 64 MiB)")
    p.add_argument("--gc-grace", type=float, help="storage nodes' garbage-collection grace in seconds: commits of "
                   "versions older than half of it are refused (default 3600; 0: no guard, GC refused)")
    add_liveness_arguments(p)
    add_read_arguments(p)
    p.add_argument("--auto-add", action="store_true", default=None,
                   help="storage nodes started with --join enter the ring at once (no `objstore node add`)")


def add_liveness_arguments(p: argparse.ArgumentParser) -> None:
    """``--node-timeout`` and ``--down-after``: on ``objstore metadata`` and ``objstore up``."""
    p.add_argument("--node-timeout", type=float,
                   help="seconds without a heartbeat before a storage node is marked down (default 10)")
    p.add_argument("--down-after", type=float,
                   help="seconds a storage node stays down before it is marked out and its data "
                        "re-created elsewhere (default 600)")


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    """``--lease-reads``: on ``objstore metadata`` and ``objstore up``."""
    p.add_argument("--lease-reads", action=argparse.BooleanOptionalAction, default=None,
                   help="the leader answers strong reads without a heartbeat round while it holds a lease "
                        "(default on; every member must agree; see docs/architecture.md, Lease reads)")


def read_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """``--lease-reads`` or ``--no-lease-reads`` if given in ``args``, as an ``objstore metadata`` argument."""
    value = getattr(args, "lease_reads", None)
    return () if value is None else ("--lease-reads",) if value else ("--no-lease-reads",)


def liveness_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """The liveness flags given in ``args``, as ``objstore metadata`` arguments."""
    out: list[str] = []
    for flag, value in (("--node-timeout", args.node_timeout), ("--down-after", args.down_after)):
        if value is not None:
            out += [flag, repr(value)]
    return tuple(out)


def config_from_args(args: argparse.Namespace) -> MetadataConfig:
    """The validated MetadataConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(MetadataConfig, args, {
        "node_id": args.node_id, "data_dir": args.data_dir, "peers": csv_tuple(args.peers),
        "default_policy": args.default_policy, "snapshot_every": args.snapshot_every, "join": args.join,
        "enable_fault_injection": args.enable_fault_injection, "tick_ms": args.tick_ms,
        "election_ticks": args.election_ticks, "heartbeat_ticks": args.heartbeat_ticks,
        "log_segment_bytes": args.log_segment_bytes, "gc_grace": args.gc_grace,
        "node_timeout": args.node_timeout, "down_after": args.down_after,
        "auto_add": getattr(args, "auto_add", None), "lease_reads": getattr(args, "lease_reads", None),
    })
