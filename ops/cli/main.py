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

This is the one place that can reach every part of objstore; it imports a subcommand's
module only when that subcommand runs (see :data:`COMMANDS`). Exit codes and error lines are
those of :mod:`ops.cli.output`.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Callable, Sequence

from objstore.errors import ObjstoreError
from ops.cli.output import INTERRUPTED, USAGE, CommandError, fail

# Each subcommand, in the order ``--help`` lists them, and the ``module:function`` that
# registers it (``add_parser`` if no function is named). Only the running subcommand's
# module is imported: an admin call or a service process does not pay for the others
# (the benchmarks, every service's app). ``--help`` and an unknown command build them all.
COMMANDS: dict[str, str] = {
    "up": "ops.cli.services:add_up_parser",
    "storage": "ops.cli.services:add_storage_parser",
    "metadata": "ops.cli.services:add_metadata_parser",
    "gateway": "ops.cli.services:add_gateway_parser",
    "status": "ops.cli.status",
    "object": "ops.cli.object_info",
    "bench": "ops.bench",
    "bench-metadata": "ops.bench_metadata",
    "key": "ops.cli.keys",
    "keys": "ops.cli.keys",
    "scrub": "ops.cli.scrub",
    "repair": "ops.cli.repair",
    "top": "ops.cli.top",
    "bucket": "ops.cli.bucket_admin",
    "node": "ops.cli.nodes",
    "rebalance": "ops.cli.rebalance",
}
# ``objstore metadata ACTION``: these administer the metadata Raft group
# (:mod:`ops.cli.metadata_admin`); anything else runs a metadata node.
METADATA_ADMIN = ("status", "add", "remove", "transfer-leader")


def _registrar(target: str) -> Callable[[Any], None]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function or "add_parser")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole ``objstore`` parser; with ``command`` (one of :data:`COMMANDS`), a parser
    that knows that subcommand only, for running it."""
    parser = argparse.ArgumentParser(prog="objstore", description="A distributed object store with an S3 API.")
    sub = parser.add_subparsers(dest="command", required=True)
    targets = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for target in dict.fromkeys(targets):  # "key" and "keys" are one registration
        _registrar(target)(sub)
    return parser


def _metadata_admin(argv: list[str]) -> int:
    from ops.cli import metadata_admin

    try:
        return metadata_admin.main(argv)
    except CommandError as exc:
        fail(f"metadata {argv[0]}", exc.message)
        return exc.code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) > 1 and argv[0] == "metadata":
        if argv[1] in METADATA_ADMIN:
            return _metadata_admin(argv[1:])
        if argv[1] == "serve":
            argv = [argv[0], *argv[2:]]
    args = build_parser(argv[0] if argv else None).parse_args(argv)
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
