"""``objstore bucket set-consistency BUCKET LEVEL``: a bucket's default read consistency.

LEVEL is ``strong``, ``quorum`` or ``one`` (see the README's "Consistency"); reads that
send ``x-objstore-consistency`` choose for themselves. Gateways use the new default once
their cached bucket record expires (about 2 s). Finds the cluster as every admin command
does (:mod:`ops.cli.cluster`).
"""
from __future__ import annotations

import argparse
from typing import Any

from metadata.api.client import MetadataClient
from objstore.errors import InvalidArgument, NoSuchBucket
from objstore.manifest import LEVELS
from ops.cli.cluster import ClusterRef, add_cluster_arguments, run_admin
from ops.cli.output import OK, USAGE, CommandError, add_json_argument, emit


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bucket", help="bucket settings: set-consistency")
    actions = p.add_subparsers(dest="bucket_action", required=True)
    sc = actions.add_parser("set-consistency", help="set a bucket's default read consistency")
    sc.add_argument("bucket", metavar="BUCKET")
    sc.add_argument("level", metavar="LEVEL", choices=LEVELS, help=" | ".join(LEVELS))
    add_cluster_arguments(sc)
    add_json_argument(sc)
    p.set_defaults(func=run)


async def _run(args: argparse.Namespace, cluster: ClusterRef) -> int:
    async with MetadataClient(list(cluster.metadata), cluster.secret, client_id="objstore-bucket",
                              tls=cluster.tls()) as meta:
        try:
            bucket = await meta.set_bucket_consistency(args.bucket, args.level)
        except (NoSuchBucket, InvalidArgument) as exc:
            raise CommandError(exc.message, USAGE) from None
    emit(args, {"bucket": bucket.name, "consistency": bucket.consistency},
         lambda d: f"bucket {d['bucket']}: reads default to {d['consistency']}")
    return OK


def run(args: argparse.Namespace) -> int:
    return run_admin(args, _run)
