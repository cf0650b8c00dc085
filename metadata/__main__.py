"""``python -m metadata``: run one metadata node.

    python -m metadata --node-id m1 --data-dir DIR --port 7000 --secret S
                       [--host 127.0.0.1] [--default-policy replica:3] [--snapshot-every 10000]
                       [--peers m1=h:p,m2=h:p] [--config FILE.json] [--log-level INFO]

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
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    overrides = {
        "node_id": a.node_id, "data_dir": a.data_dir, "secret": a.secret, "host": a.host, "port": a.port,
        "peers": tuple(x for x in a.peers.split(",") if x) if a.peers else None,
        "default_policy": a.default_policy, "snapshot_every": a.snapshot_every,
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
