"""The ``objstore bench-metadata`` subcommand: its options, their resolution, its entry point.

``add_parser(sub)`` registers the subcommand with ``func=run``. :func:`resolve` turns parsed
options and the environment into :class:`RunSettings` or :class:`ScaleSettings` (pure
apart from reading ``cluster.json``/``credentials.json``; raises SettingsError).
``run(args)`` returns 0 when every requested phase ran without errors, 1 otherwise (etcd
not installed, failed operations); it raises :class:`ops.cli.output.CommandError` (exit 1)
for options that do not describe a run or a system that could not start, and the
``objstore`` command answers 130 on Ctrl-C or SIGTERM (which stops what the run started). The report goes to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Mapping

from ops.bench_metadata.discovery import DiscoveryError, find_target
from ops.bench_metadata.figures import TopologyError
from ops.bench_metadata.report import format_json, format_table
from ops.bench_metadata.runner import RunSettings, describe, run_benchmark
from ops.bench_metadata.scale import ScaleSettings, format_scale, run_scale
from ops.bench_metadata.spawn import SpawnError
from ops.cli.output import CommandError, run_stoppable


class SettingsError(Exception):
    """The options do not describe a runnable benchmark."""


def _ints(value: str, what: str, low: int = 1) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise SettingsError(f"{what}: expected comma-separated integers, got {value!r}") from None
    if not out or any(v < low for v in out):
        raise SettingsError(f"{what}: every value must be at least {low}, got {value!r}")
    return out


def add_parser(sub: Any) -> None:
    """Add ``bench-metadata`` to ``sub`` (an argparse subparsers object)."""
    p = sub.add_parser(
        "bench-metadata", help="benchmark the metadata service (and etcd beside it)",
        description="Committed commands/s and linearizable reads/s of the metadata service at 1, 16 and 64 "
                    "concurrent clients, with latency percentiles and commands per fsync; optionally etcd "
                    "on the same machine for comparison, or the 1,000,000-object scale figures.",
    )
    p.add_argument("--metadata", help="comma-separated host:port of running metadata nodes")
    p.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    p.add_argument("--data-dir", default="./objstore-data",
                   help="data dir of a running `objstore up` (cluster.json, credentials.json; default ./objstore-data)")
    p.add_argument("--spawn", type=int, default=0, metavar="N",
                   help="start N metadata nodes of our own on free ports, and stop them afterwards")
    p.add_argument("--single", action="store_true",
                   help="with --spawn 1: start the node without --peers (the single-node service, no Raft)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated client counts (default 1,16,64)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per phase (default 5)")
    p.add_argument("--etcd", nargs="?", const="1,3", default=None, metavar="SIZES",
                   help="also start etcd clusters of these sizes on loopback and measure them (default 1,3)")
    p.add_argument("--etcd-only", action="store_true", help="measure only etcd (with --etcd)")
    p.add_argument("--scale", type=int, default=0, metavar="N",
                   help="instead: load N object records into one spawned node and measure RSS, listing, "
                        "snapshot size and restart time")
    p.add_argument("--scale-loader", choices=("http", "direct"), default="http",
                   help="how --scale loads: 'http' through the node's API (default), 'direct' through the "
                        "service's own proposal path in this process, then the node is started on that data")
    p.add_argument("--scale-concurrency", type=int, default=256, help="concurrent loaders for --scale (default 256)")
    p.add_argument("--scale-repeats", type=int, default=20, help="list pages measured per position (default 20)")
    p.add_argument("--scale-restart-timeout", type=float, default=0.0, metavar="S",
                   help="seconds the node's restart after a --scale load may take (default 300, or 60 per "
                        "million records when that is more)")
    p.add_argument("--scale-step", type=int, default=0, metavar="N",
                   help="records per point of the --scale load curve (default a tenth of --scale, at least 1000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the read key choice (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def resolve(args: argparse.Namespace, env: Mapping[str, str]) -> RunSettings | ScaleSettings:
    """The settings the options describe; raises SettingsError."""
    if args.duration <= 0:
        raise SettingsError("--duration must be positive")
    if args.scale:
        if args.scale < 1000:
            raise SettingsError("--scale needs at least 1000 records (one full listing page)")
        if args.scale_concurrency < 1 or args.scale_repeats < 1:
            raise SettingsError("--scale-concurrency and --scale-repeats must be at least 1")
        if args.scale_step < 0 or args.scale_restart_timeout < 0:
            raise SettingsError("--scale-step and --scale-restart-timeout must not be negative")
        return ScaleSettings(count=args.scale, loader=args.scale_loader, concurrency=args.scale_concurrency,
                             repeats=args.scale_repeats, step=args.scale_step,
                             restart_timeout_s=args.scale_restart_timeout)
    if args.spawn < 0:
        raise SettingsError("--spawn must not be negative")
    if args.single and args.spawn != 1:
        raise SettingsError("--single needs --spawn 1")
    concurrencies = _ints(args.concurrency, "--concurrency")
    etcd_sizes = _ints(args.etcd, "--etcd") if args.etcd else ()
    if args.etcd_only and not etcd_sizes:
        raise SettingsError("--etcd-only needs --etcd")
    target = None
    if not args.etcd_only and not args.spawn:
        try:
            target = find_target(args.metadata, args.secret, args.data_dir, env)
        except DiscoveryError as exc:
            raise SettingsError(str(exc)) from None
    return RunSettings(concurrencies=concurrencies, duration_s=args.duration, target=target, spawn=args.spawn,
                       etcd_sizes=etcd_sizes, skip_objstore=args.etcd_only, seed=args.seed,
                       spawn_peers=not args.single)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed ``args`` describe; the process exit code."""
    try:
        settings = resolve(args, os.environ)
        if isinstance(settings, ScaleSettings):
            result = run_stoppable(run_scale(settings, sys.stderr))
            print(format_scale(result, as_json=args.json), flush=True)
            return 0 if result.ok else 1
        report = run_stoppable(run_benchmark(settings, sys.stderr))
    except (SettingsError, SpawnError, TopologyError) as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(format_json(report.phases, report.notes, describe(settings)), flush=True)
    else:
        print(format_table(report.phases, report.notes), flush=True)
    return 1 if report.failed else 0
