"""The ``objstore bench`` subcommand: its options and its entry point.

``add_parser(sub)`` registers ``bench`` on an argparse subparsers object with
``func=run``; ``run(args)`` returns the exit code: 0 when every phase ran without an
error or failed check, 1 when any did; it raises :class:`ops.cli.output.CommandError`
(exit 1) when the benchmark could not start, and the ``objstore`` command answers 130 when
interrupted. The report goes to stdout (a table, or JSON with ``--json``); progress and
problems go to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from ops.bench.report import format_json, format_table
from ops.bench.runner import run_benchmark
from ops.bench.s3client import BenchError
from ops.bench.settings import PHASES, SettingsError, resolve_settings
from ops.cli.output import CommandError, emit


def add_parser(sub: Any) -> None:
    """Add the ``bench`` subcommand to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "bench", help="benchmark a running cluster (or any S3 endpoint)",
        description="Measure PUT/GET of small and large objects against an S3 endpoint, with the gateway's "
                    "memory and the cluster's CPU time when the cluster runs on this machine.",
    )
    p.add_argument("--data-dir", default="./objstore-data",
                   help="the cluster's data dir, for cluster.json and credentials.json (default ./objstore-data)")
    p.add_argument("--endpoint", help="S3 endpoint URL (default: cluster.json's endpoint)")
    p.add_argument("--access-key", help="S3 access key (else AWS_ACCESS_KEY_ID, OBJSTORE_ACCESS_KEY, "
                                        "credentials.json)")
    p.add_argument("--secret-key", help="S3 secret key (else AWS_SECRET_ACCESS_KEY, OBJSTORE_SECRET_KEY, "
                                        "credentials.json)")
    p.add_argument("--region", help="SigV4 region (default: cluster.json's, AWS_REGION, or us-east-1)")
    p.add_argument("--bucket", help="bucket to use (default: a new bench-<random> bucket, deleted after)")
    p.add_argument("--policy", help="data policy of the bucket the run creates, e.g. replica:3 or ec:4+2 "
                                    "(default: the cluster's)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per small-object phase (default 10)")
    p.add_argument("--small-size", default="4096", help="small object size, e.g. 4096 or 4KiB (default 4096)")
    p.add_argument("--large-size", default="64MiB", help="large object size (default 64MiB)")
    p.add_argument("--large-count", type=int, default=8, help="objects per large-object phase (default 8)")
    p.add_argument("--concurrency", default="1,32",
                   help="comma-separated concurrencies of the small-object phases (default 1,32)")
    p.add_argument("--large-concurrency", default="1,4",
                   help="comma-separated concurrencies of the large-object phases (default 1,4)")
    p.add_argument("--phases", default=",".join(PHASES), help=f"phases to run, in order (default {','.join(PHASES)})")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed ``args``; the process exit code."""
    try:
        settings = resolve_settings(args, os.environ)
        result = asyncio.run(run_benchmark(settings, sys.stderr))
    except (SettingsError, BenchError) as exc:
        raise CommandError(str(exc)) from None
    if settings.json:
        print(format_json(result), flush=True)
    else:
        emit(args, result, format_table)  # coloured on a terminal
    return 0 if result.ok else 1
