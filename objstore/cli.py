"""The ``objstore`` command: start a local cluster, run one service, or administer a cluster.

Subcommands:
  up         a whole cluster on this machine (metadata, storage nodes, gateway)
  storage    one storage node
  metadata   one metadata node (`objstore metadata [serve] --node-id ...`), or administer the
             metadata Raft group: `objstore metadata status|add|remove|transfer-leader ...`
  gateway    one S3 gateway
  status     the cluster: nodes, their state, the ring epoch, capacity used
  bench      a benchmark against a running cluster
  bench-metadata  a benchmark of the metadata service (and etcd beside it)
  key        S3 access keys (users): create, list, delete

Service subcommands are resolved by module name at run time (``metadata.app``,
``gateway.app``, ``ops.*``), so this package does not import the parts built on it.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Sequence

from objstore.config import GatewayConfig, MetadataConfig, StorageConfig, load
from objstore.errors import ObjstoreError


def _csv(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _secret(args: argparse.Namespace) -> str | None:
    return args.secret or os.environ.get("OBJSTORE_CLUSTER_SECRET")


def _add_up(sub: Any) -> None:
    p = sub.add_parser("up", help="start a local cluster in the foreground")
    p.add_argument("--data-dir", default="./objstore-data", help="all data under this folder (default ./objstore-data)")
    p.add_argument("--host", default="127.0.0.1", help="address every process listens on (default 127.0.0.1)")
    p.add_argument("--s3-port", type=int, default=9000, help="the gateway's S3 port (default 9000)")
    p.add_argument("--storage-nodes", type=int, default=6, help="number of storage nodes (default 6)")
    p.add_argument("--metadata-nodes", type=int, default=3,
                   help="number of metadata nodes, one Raft group (default 3; 1 runs without replication)")
    p.add_argument("--default-policy", default="replica:3", help="data policy of new buckets (default replica:3)")
    p.add_argument("--access-key", default=os.environ.get("OBJSTORE_ACCESS_KEY"),
                   help="S3 access key (env OBJSTORE_ACCESS_KEY; generated and kept if not given)")
    p.add_argument("--secret-key", default=os.environ.get("OBJSTORE_SECRET_KEY"),
                   help="S3 secret key (env OBJSTORE_SECRET_KEY)")


def _add_storage(sub: Any) -> None:
    p = sub.add_parser("storage", help="run one storage node")
    p.add_argument("--config", help="JSON file with StorageConfig fields")
    p.add_argument("--node-id")
    p.add_argument("--data-dir")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    p.add_argument("--zone")
    p.add_argument("--weight", type=float)
    p.add_argument("--capacity-bytes", type=int)
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--advertise", help="host:port others reach this node at")


# `objstore metadata <word> ...` with one of these words administers the Raft group
# (metadata.replication.admin); anything else runs a node (`serve` may be said explicitly).
METADATA_ADMIN = ("status", "add", "remove", "transfer-leader")


def _add_metadata(sub: Any) -> None:
    p = sub.add_parser(
        "metadata", help="run one metadata node; or: metadata status|add|remove|transfer-leader",
        description="Run one metadata node (`objstore metadata [serve] --node-id ...`). To administer the "
                    "metadata Raft group instead: `objstore metadata status|add ID=HOST:PORT|remove ID|"
                    "transfer-leader ID` (each with --help).")
    p.add_argument("--config", help="JSON file with MetadataConfig fields")
    p.add_argument("--node-id")
    p.add_argument("--data-dir")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    p.add_argument("--peers", help="comma-separated id=host:port of every metadata node (a Raft group)")
    p.add_argument("--default-policy")
    p.add_argument("--snapshot-every", type=int, help="log entries between snapshots (default 10000)")
    p.add_argument("--join", action="store_true", default=None,
                   help="start empty and wait to be added to a running group (objstore metadata add)")
    p.add_argument("--enable-fault-injection", action="store_true", default=None,
                   help="serve POST /debug/partition (tests only)")
    p.add_argument("--tick-ms", type=int, help="Raft tick in milliseconds (default 50)")
    p.add_argument("--election-ticks", type=int, help="election timeout in ticks, randomized up to twice (default 12)")
    p.add_argument("--heartbeat-ticks", type=int, help="heartbeat interval in ticks (default 2)")
    p.add_argument("--log-segment-bytes", type=int, help="size of one log segment file (default 64 MiB)")


def _add_gateway(sub: Any) -> None:
    p = sub.add_parser("gateway", help="run one S3 gateway")
    p.add_argument("--config", help="JSON file with GatewayConfig fields")
    p.add_argument("--id", dest="gateway_id")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--region")
    p.add_argument("--default-policy")
    p.add_argument("--access-key", default=os.environ.get("OBJSTORE_ACCESS_KEY"))
    p.add_argument("--secret-key", default=os.environ.get("OBJSTORE_SECRET_KEY"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="objstore", description="A distributed object store with an S3 API.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_up(sub)
    _add_storage(sub)
    _add_metadata(sub)
    _add_gateway(sub)
    for name in ("status", "bench", "bench_metadata", "keys"):
        module = importlib.import_module(f"ops.{name}")
        module.add_parser(sub)
    return parser


def _run_service(args: argparse.Namespace) -> int:
    if args.command == "storage":
        cfg = load(StorageConfig, args.config, {
            "node_id": args.node_id, "data_dir": args.data_dir, "host": args.host, "port": args.port,
            "secret": _secret(args), "zone": args.zone, "weight": args.weight,
            "capacity_bytes": args.capacity_bytes, "metadata": _csv(args.metadata), "advertise": args.advertise,
        })
        importlib.import_module("objstore.node.app").main(cfg)
    elif args.command == "metadata":
        cfg = load(MetadataConfig, args.config, {
            "node_id": args.node_id, "data_dir": args.data_dir, "host": args.host, "port": args.port,
            "secret": _secret(args), "peers": _csv(args.peers), "default_policy": args.default_policy,
            "snapshot_every": args.snapshot_every, "join": args.join,
            "enable_fault_injection": args.enable_fault_injection, "tick_ms": args.tick_ms,
            "election_ticks": args.election_ticks, "heartbeat_ticks": args.heartbeat_ticks,
            "log_segment_bytes": args.log_segment_bytes,
        })
        importlib.import_module("metadata.app").main(cfg)
    else:
        cfg = load(GatewayConfig, args.config, {
            "gateway_id": args.gateway_id, "host": args.host, "port": args.port, "secret": _secret(args),
            "metadata": _csv(args.metadata), "region": args.region, "default_policy": args.default_policy,
            "access_key": args.access_key, "secret_key": args.secret_key,
        })
        importlib.import_module("gateway.app").main(cfg)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) > 1 and argv[0] == "metadata":
        if argv[1] in METADATA_ADMIN:
            return int(importlib.import_module("metadata.replication.admin").main(argv[1:]))
        if argv[1] == "serve":
            argv = [argv[0], *argv[2:]]
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            from objstore.cluster.launcher import UpOptions, run_up

            return run_up(UpOptions(
                data_dir=args.data_dir, host=args.host, s3_port=args.s3_port, storage_nodes=args.storage_nodes,
                metadata_nodes=args.metadata_nodes, default_policy=args.default_policy,
                access_key=args.access_key, secret_key=args.secret_key,
            ))
        if args.command in ("storage", "metadata", "gateway"):
            return _run_service(args)
        return int(args.func(args) or 0)
    except ObjstoreError as exc:
        msg = exc.message
        print(f"objstore {args.command}: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
