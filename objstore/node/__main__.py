"""``python -m objstore.node``: run one storage node (the same flags as ``objstore storage``).

    python -m objstore.node --node-id s1 --data-dir DIR --port 7001 --secret S \
        [--host 127.0.0.1] [--zone zone-a] [--weight 1] [--capacity-bytes N] \
        [--metadata host:port,host:port] [--advertise host:port] [--config FILE]

The secret may also come from the environment variable OBJSTORE_CLUSTER_SECRET.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from objstore.config import StorageConfig
from objstore.errors import ObjstoreError
from objstore.node.cli_args import add_arguments, config_from_args


def parse_args(argv: Sequence[str] | None = None) -> StorageConfig:
    p = argparse.ArgumentParser(prog="python -m objstore.node", description="Run one objstore storage node.")
    add_arguments(p)
    return config_from_args(p.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
    except ObjstoreError as exc:
        print(f"storage node: {exc.message}", file=sys.stderr)
        return 2
    from objstore.node.app import main as run

    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
