"""``python -m objstore.node``: run one storage node (the same flags as ``objstore storage``).

    python -m objstore.node --node-id s1 --data-dir DIR --port 7001 --secret S \
        [--host 127.0.0.1] [--zone zone-a] [--weight 1] [--capacity-bytes N] \
        [--metadata host:port,host:port] [--advertise host:port] [--config FILE]

The secret may also come from the environment variable OBJSTORE_CLUSTER_SECRET.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from objstore.config import StorageConfig, load
from objstore.errors import ObjstoreError


def parse_args(argv: Sequence[str] | None = None) -> StorageConfig:
    p = argparse.ArgumentParser(prog="python -m objstore.node", description="Run one objstore storage node.")
    p.add_argument("--config", help="JSON file with StorageConfig fields")
    p.add_argument("--node-id")
    p.add_argument("--data-dir")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--secret", default=os.environ.get("OBJSTORE_CLUSTER_SECRET"))
    p.add_argument("--zone")
    p.add_argument("--weight", type=float)
    p.add_argument("--capacity-bytes", type=int)
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--advertise", help="host:port others reach this node at")
    a = p.parse_args(argv)
    metadata = tuple(x.strip() for x in a.metadata.split(",") if x.strip()) if a.metadata else None
    return load(StorageConfig, a.config, {
        "node_id": a.node_id, "data_dir": a.data_dir, "host": a.host, "port": a.port, "secret": a.secret,
        "zone": a.zone, "weight": a.weight, "capacity_bytes": a.capacity_bytes, "metadata": metadata,
        "advertise": a.advertise,
    })


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
    except (ObjstoreError, TypeError) as exc:
        print(f"storage node: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    from objstore.node.app import main as run

    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
