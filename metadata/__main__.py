"""``python -m metadata``: run one metadata node.

    python -m metadata --node-id m1 --data-dir DIR --port 7000 --secret S
                       [--host 127.0.0.1] [--default-policy replica:3] [--snapshot-every 10000]
                       [--peers m1=h:p,m2=h:p] [--join] [--enable-fault-injection]
                       [--tick-ms 50] [--election-ticks 12] [--heartbeat-ticks 2]
                       [--log-segment-bytes N] [--config FILE.json] [--log-level INFO]

With ``--peers`` the node is a Raft member (a new cluster is bootstrapped from the peers,
identical on every member); with ``--join`` it starts empty and waits to be added by the
leader (``objstore metadata add ID=HOST:PORT``). Without either it runs as a single node.

Flags override the JSON config file's keys (the MetadataConfig field names). The secret may
come from the environment variable OBJSTORE_CLUSTER_SECRET instead of ``--secret``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from metadata.app import main
from objstore.config import MetadataConfig, load
from objstore.errors import ObjstoreError


def add_raft_arguments(p: argparse.ArgumentParser) -> None:
    """The Raft flags shared by ``python -m metadata`` and ``objstore metadata``."""
    p.add_argument("--join", action="store_true", default=None,
                   help="start empty and wait to be added to an existing cluster (objstore metadata add)")
    p.add_argument("--enable-fault-injection", action="store_true", default=None,
                   help="serve POST /debug/partition and honour X-Objstore-Debug-Stale-Read (tests only)")
    p.add_argument("--tick-ms", type=int, help="Raft tick in milliseconds (default 50)")
    p.add_argument("--election-ticks", type=int, help="election timeout in ticks, randomized up to twice (default 12)")
    p.add_argument("--heartbeat-ticks", type=int, help="heartbeat interval in ticks (default 2)")
    p.add_argument("--log-segment-bytes", type=int, help="size of a log segment file (default 64 MiB)")


def raft_overrides(a: argparse.Namespace) -> dict:
    return {"join": a.join, "enable_fault_injection": a.enable_fault_injection, "tick_ms": a.tick_ms,
            "election_ticks": a.election_ticks, "heartbeat_ticks": a.heartbeat_ticks,
            "log_segment_bytes": a.log_segment_bytes}


def parse_args(argv: list[str] | None = None) -> tuple[MetadataConfig, str]:
    p = argparse.ArgumentParser(prog="python -m metadata", description="Run one objstore metadata node.")
    p.add_argument("--config", help="JSON file with MetadataConfig fields")
    p.add_argument("--node-id")
    p.add_argument("--data-dir")
    p.add_argument("--secret", default=os.environ.get("OBJSTORE_CLUSTER_SECRET"),
                   help="the cluster secret for internal requests (or env OBJSTORE_CLUSTER_SECRET)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--peers", help="comma-separated id=host:port of every metadata node")
    p.add_argument("--default-policy")
    p.add_argument("--snapshot-every", type=int)
    add_raft_arguments(p)
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    overrides = {
        "node_id": a.node_id, "data_dir": a.data_dir, "secret": a.secret, "host": a.host, "port": a.port,
        "peers": tuple(x for x in a.peers.split(",") if x) if a.peers else None,
        "default_policy": a.default_policy, "snapshot_every": a.snapshot_every, **raft_overrides(a),
    }
    try:
        cfg = load(MetadataConfig, a.config, overrides)
    except (ObjstoreError, TypeError) as exc:
        p.error(str(exc))
    if not cfg.secret:
        p.error("a cluster secret is required (--secret or OBJSTORE_CLUSTER_SECRET)")
    return cfg, a.log_level


if __name__ == "__main__":
    config, level = parse_args()
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(config)
