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
import json
import os
import sys
from pathlib import Path
from typing import Any

from ops.bench.compare import format_compare_table
from ops.bench.compare_runner import run_comparison
from ops.bench.report import format_json, format_table
from ops.bench.runner import run_benchmark
from ops.bench.s3client import BenchError
from ops.bench.settings import DEFAULT_PHASES, PHASES, SettingsError, resolve_settings
from ops.cli.output import CommandError, emit, run_stoppable


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
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per small-object phase (default 10; 5 with --compare)")
    p.add_argument("--small-size", default="4096", help="small object size, e.g. 4096 or 4KiB (default 4096)")
    p.add_argument("--large-size", default="64MiB", help="large object size (default 64MiB)")
    p.add_argument("--large-count", type=int, default=None,
                   help="objects per large-object phase (default 8; 4 with --compare)")
    p.add_argument("--concurrency", default=None,
                   help="comma-separated concurrencies of the small-object phases (default 1,32; 16,64 with --compare)")
    p.add_argument("--large-concurrency", default=None,
                   help="comma-separated concurrencies of the large-object and multipart phases "
                        "(default 1,4; 2 with --compare)")
    p.add_argument("--phases", default=None,
                   help=f"phases to run, in order, from {','.join(PHASES)} "
                        f"(default {','.join(DEFAULT_PHASES)}; all five with --compare)")
    p.add_argument("--part-size", default="8MiB", help="multipart-put: size of each part (default 8MiB)")
    p.add_argument("--part-concurrency", type=int, default=4,
                   help="multipart-put: parts of one upload sent at once (default 4)")
    p.add_argument("--disk-limit", type=float, metavar="MBPS",
                   help="MB/s of three parallel fsynced write streams (python -m ops.bench_disk): large PUTs "
                        "are reported as a share of MBPS / --disk-copies")
    p.add_argument("--disk-copies", type=int, default=3, help="copies each PUT writes, for --disk-limit (default 3)")
    g = p.add_argument_group("comparing with a second S3 endpoint (run interleaved: A B A B ...)")
    g.add_argument("--compare", metavar="ENDPOINT", help="second S3 endpoint URL, e.g. http://127.0.0.1:18080")
    g.add_argument("--compare-access-key", help="its access key (else OBJSTORE_COMPARE_ACCESS_KEY)")
    g.add_argument("--compare-secret-key", help="its secret key (prefer --compare-secret-file or "
                                                 "OBJSTORE_COMPARE_SECRET_KEY: a command line is visible to others)")
    g.add_argument("--compare-secret-file", help="file holding its secret key (mode 0600)")
    g.add_argument("--compare-bucket", help="its bucket (default: a new bench-<random> bucket, deleted after)")
    g.add_argument("--compare-region", help="its SigV4 region (default: the same as the first endpoint's)")
    g.add_argument("--compare-pids-from", metavar="FILE",
                   help="pids of its processes for CPU figures: a file of pids, or a folder of *.pid files "
                        "(children included)")
    g.add_argument("--compare-process-pattern", metavar="REGEX",
                   help="its processes for CPU figures: command lines matching REGEX, e.g. swift (children included)")
    g.add_argument("--idle-sample", type=float, default=3.0, metavar="S",
                   help="seconds of each endpoint's idle CPU measured first, to report CPU-µs/op above idle "
                        "(default 3; 0 skips)")
    g.add_argument("--rounds", type=int, default=None, help="rounds per endpoint and workload (default 5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--json-file", metavar="PATH", help="also write the results as JSON to PATH")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed ``args``; the process exit code."""
    try:
        settings = resolve_settings(args, os.environ)
        if settings.compare is not None:
            compared = run_stoppable(run_comparison(settings, sys.stderr))
        else:
            result = run_stoppable(run_benchmark(settings, sys.stderr))
    except (SettingsError, BenchError) as exc:
        raise CommandError(str(exc)) from None
    if getattr(args, "json_file", None):
        Path(args.json_file).write_text(json.dumps((compared if settings.compare else result).to_dict(), indent=2)
                                        + "\n")
    if settings.compare is not None:
        emit(args, compared.to_dict() if settings.json else compared, format_compare_table)
        return 0 if compared.ok else 1
    if settings.json:
        print(format_json(result), flush=True)
    else:
        emit(args, result, format_table)  # coloured on a terminal
    return 0 if result.ok else 1
