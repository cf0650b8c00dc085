"""``python -m metadata``: run one metadata node (the same flags as ``objstore metadata``).

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
import sys

from metadata.app import main
from metadata.cli_args import add_arguments, config_from_args
from objstore.config import MetadataConfig
from objstore.errors import ObjstoreError


def parse_args(argv: list[str] | None = None) -> tuple[MetadataConfig, str]:
    p = argparse.ArgumentParser(prog="python -m metadata", description="Run one objstore metadata node.")
    add_arguments(p)
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    try:
        cfg = config_from_args(a)
    except ObjstoreError as exc:
        p.error(exc.message)
    if not cfg.secret:
        p.error("a cluster secret is required (--secret or OBJSTORE_CLUSTER_SECRET)")
    return cfg, a.log_level


if __name__ == "__main__":
    config, level = parse_args()
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main(config)
