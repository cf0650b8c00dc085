"""The ``objstore`` command: start a local cluster, run one service, or administer a cluster.

Subcommands:
  up         a whole cluster on this machine (metadata, storage nodes, gateway)
  storage    one storage node
  metadata   one metadata node (`objstore metadata [serve] --node-id ...`), or administer the
             metadata Raft group: `objstore metadata status|add|remove|transfer-leader ...`
  gateway    one S3 gateway
  status     the cluster: nodes, their state, the ring epoch, capacity used
             (`--watch`: a live view, the same as `objstore top`)
  top        a live view of the cluster: requests/s, latency, nodes, Raft, redundancy
  bench      a benchmark against a running cluster
  bench-metadata  a benchmark of the metadata service (and etcd beside it)
  key        S3 access keys (users): create, list, delete
  object     one object: `objstore object info BUCKET KEY` shows its policy and where its
             replicas or shards are
  scrub      a storage node's scrubber: `objstore scrub start NODE [--wait]`, `objstore scrub status [NODE]`
  repair     `objstore repair status [--watch]`: objects and bytes below policy, repair progress
  bucket     `objstore bucket set-consistency BUCKET strong|quorum|one`: a bucket's default read level
  rebalance  `objstore rebalance status [--watch]`: objects and bytes misplaced, moves, rate, ETA
  node       membership: `objstore node list|add|drain|remove|set-weight|ok-to-stop`

This is the one place that imports every part of objstore. Exit codes and error lines are
those of :mod:`ops.cli.output`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import ops.bench
import ops.bench_metadata
from objstore.errors import ObjstoreError
from ops.cli import (
    bucket_admin, keys, metadata_admin, nodes, object_info, rebalance, repair, scrub, status, top,
)
from ops.cli.output import INTERRUPTED, USAGE, CommandError, fail
from ops.cli.services import add_service_parsers, add_up_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="objstore", description="A distributed object store with an S3 API.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_up_parser(sub)
    add_service_parsers(sub)
    for module in (
        status, object_info, ops.bench, ops.bench_metadata, keys, scrub, repair, top, bucket_admin,
        nodes, rebalance,
    ):
        module.add_parser(sub)
    return parser


def _metadata_admin(argv: list[str]) -> int:
    try:
        return metadata_admin.main(argv)
    except CommandError as exc:
        fail(f"metadata {argv[0]}", exc.message)
        return exc.code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) > 1 and argv[0] == "metadata":
        if argv[1] in metadata_admin.COMMANDS:
            return _metadata_admin(argv[1:])
        if argv[1] == "serve":
            argv = [argv[0], *argv[2:]]
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        fail(args.command, exc.message)
        return exc.code
    except ObjstoreError as exc:
        fail(args.command, exc.message)
        return USAGE
    except KeyboardInterrupt:
        fail(args.command, "interrupted")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
