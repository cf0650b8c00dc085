"""``objstore up|storage|metadata|gateway``: start a whole local cluster, or run one service.

Each service declares its own flags and builds its config (``add_arguments`` and
``config_from_args`` in ``objstore/node/cli_args.py``, ``metadata/cli_args.py`` and
``gateway/cli_args.py``); this module only registers them as subcommands and runs the
service's ``main(config)``. ``up`` starts every service as a child process of
:mod:`objstore.cluster.launcher`, each running ``python -m ops.cli <role> ...``; a service
process imports its own app only (``--help`` imports none).
"""
from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

import gateway.cli_args
import metadata.cli_args
import objstore.node.cli_args
from objstore.cli_args import ACCESS_KEY_ENV, SECRET_FLAG_WARNING, SECRET_KEY_ENV, add_flag_table, flag_table_argv
from metadata.liveness import heartbeat_interval
from objstore.cluster.launcher import UpOptions, run_up
from objstore.eventloop import install_fast_loop
from objstore.parent_watch import end_with_parent
from objstore.malloc_tuning import fix_malloc_thresholds
from objstore.logs import add_log_arguments, configure_from_args
from objstore.profiling import run_profiled
from objstore.tls import skip_system_trust_store
from ops.cli.main import METADATA_ADMIN


def add_up_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="start a local cluster in the foreground")
    p.add_argument("--data-dir", default="./objstore-data", help="all data under this folder (default ./objstore-data)")
    p.add_argument("--host", default="127.0.0.1", help="address every process listens on (default 127.0.0.1)")
    p.add_argument("--s3-port", type=int, default=9000, help="the gateway's S3 port (default 9000)")
    p.add_argument("--storage-nodes", type=int, default=6, help="number of storage nodes (default 6)")
    p.add_argument("--metadata-nodes", type=int, default=3,
                   help="number of metadata nodes, one Raft group (default 3; 1 runs without replication)")
    p.add_argument("--default-policy", default="replica:3", help="data policy of new buckets (default replica:3)")
    p.add_argument("--access-key", default=os.environ.get(ACCESS_KEY_ENV),
                   help=f"S3 access key (env {ACCESS_KEY_ENV}; generated and kept if not given)")
    p.add_argument("--secret-key", default=os.environ.get(SECRET_KEY_ENV),
                   help=f"S3 secret key (env {SECRET_KEY_ENV}; {SECRET_FLAG_WARNING}{SECRET_KEY_ENV})")
    gateway.cli_args.add_limit_arguments(p)
    metadata.cli_args.add_liveness_arguments(p)
    metadata.cli_args.add_read_arguments(p)
    objstore.node.cli_args.add_scrub_arguments(p)
    p.add_argument("--storage-capacity", type=int, default=0,
                   help="bytes each storage node may use, as if its disk ended there (default: its filesystem)")
    p.add_argument("--storage-reserve", type=int, default=None,
                   help="bytes each storage node keeps free (new blobs must leave them; a node counts as full "
                        "below twice this); default: 5%% of its capacity, at most 1 GiB")
    objstore.node.cli_args.add_reclaim_arguments(p)
    p.add_argument("--tls-dir", default="", help="folder with ca.pem, cert.pem and key.pem: every process serves "
                   "HTTPS with cert.pem (its SANs must name --host) and verifies the others against ca.pem")
    add_up_monitoring_arguments(p)
    p.add_argument("--json", action="store_true",
                   help="once running, print the summary (endpoint, access key, processes) as one JSON line on "
                        "stdout; progress lines go to stderr")
    p.add_argument("--repair-rate", type=float, default=None,
                   help="MB/s each storage node receives to re-create lost copies (default 20; 0: no repair)")
    add_flag_table(p, objstore.node.cli_args.REBALANCE_FLAGS)
    p.set_defaults(func=run_up_command)


def add_up_monitoring_arguments(p: argparse.ArgumentParser) -> None:
    """``objstore up``'s Prometheus flags."""
    p.add_argument("--prometheus", action="store_true",
                   help="also run Prometheus (Debian package `prometheus`) scraping every process, with the alert "
                        "rules of ops/prometheus; its data under <data-dir>/prometheus")
    p.add_argument("--prometheus-port", type=int, default=9090, help="Prometheus's port (default 9090)")
    p.add_argument("--prometheus-interval", type=float, default=15.0,
                   help="seconds between scrapes and rule evaluations (default 15)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="every process logs text or JSON lines to <data-dir>/logs/<id>.log, rotated by size")
    p.add_argument("--metrics-token-file", default="",
                   help="file holding a bearer token every process's /metrics then requires (Prometheus is "
                        "given the file)")


def run_up_command(args: argparse.Namespace) -> int:
    return run_up(UpOptions(
        data_dir=args.data_dir, host=args.host, s3_port=args.s3_port, storage_nodes=args.storage_nodes,
        metadata_nodes=args.metadata_nodes, default_policy=args.default_policy,
        access_key=args.access_key, secret_key=args.secret_key, gateway_args=gateway.cli_args.limit_argv(args),
        tls_dir=args.tls_dir, metadata_args=metadata.cli_args.liveness_argv(args) + metadata.cli_args.read_argv(args),
        storage_args=_heartbeat_argv(args.node_timeout) + objstore.node.cli_args.scrub_argv(args)
        + flag_table_argv(args, objstore.node.cli_args.REBALANCE_FLAGS),
        prometheus=args.prometheus, prometheus_port=args.prometheus_port,
        prometheus_interval=args.prometheus_interval, metrics_token_file=args.metrics_token_file,
        log_format=args.log_format,
        storage_capacity=args.storage_capacity,
        storage_reserve=args.storage_reserve,
        repair_rate=args.repair_rate,
        reclaim_args=objstore.node.cli_args.reclaim_argv(args),
        json_summary=args.json,
    ))


def _heartbeat_argv(node_timeout: float | None) -> tuple[str, ...]:
    """Storage nodes heartbeat often enough for the node timeout given to ``up``."""
    return () if node_timeout is None else ("--heartbeat-interval", repr(heartbeat_interval(node_timeout)))


# Each service: (subcommand, help, description, its flags module, the module whose
# ``main(config)`` runs it, imported when the service starts).
SERVICES = (
    ("storage", "run one storage node", None, objstore.node.cli_args, "objstore.node.app"),
    ("metadata", "run one metadata node; or: metadata " + "|".join(METADATA_ADMIN),
     "Run one metadata node (`objstore metadata [serve] --node-id ...`). To administer the metadata Raft group "
     "instead: `objstore metadata status|add ID=HOST:PORT|remove ID|transfer-leader ID` (each with --help).",
     metadata.cli_args, "metadata.app"),
    ("gateway", "run one S3 gateway", None, gateway.cli_args, "gateway.app"),
)


def add_service_parsers(sub: Any, names: tuple[str, ...] = ("storage", "metadata", "gateway")) -> None:
    for name, help_text, description, flags, entry in SERVICES:
        if name not in names:
            continue
        p = sub.add_parser(name, help=help_text, description=description)
        flags.add_arguments(p)
        add_log_arguments(p)

        def run(args: argparse.Namespace, flags: Any = flags, entry: str = entry, name: str = name) -> int:
            end_with_parent()
            skip_system_trust_store()
            configure_from_args(name, args)
            config = flags.config_from_args(args)
            install_fast_loop()
            fix_malloc_thresholds()
            run_profiled(name, lambda: importlib.import_module(entry).main(config))
            return 0

        p.set_defaults(func=run)


def add_storage_parser(sub: Any) -> None:
    add_service_parsers(sub, ("storage",))


def add_metadata_parser(sub: Any) -> None:
    add_service_parsers(sub, ("metadata",))


def add_gateway_parser(sub: Any) -> None:
    add_service_parsers(sub, ("gateway",))
