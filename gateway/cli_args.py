"""The S3 gateway's command-line flags (``objstore gateway``)."""
from __future__ import annotations

import argparse
import os

from objstore.cli_args import ACCESS_KEY_ENV, SECRET_FLAG_WARNING, SECRET_KEY_ENV
from objstore.cli_args import add_config_argument, add_flag_table, add_listen_arguments, csv_tuple, flag_table_argv
from objstore.cli_args import flag_table_values, load_from_args
from objstore.config import GatewayConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the gateway's flags on ``p``."""
    add_config_argument(p, "GatewayConfig")
    p.add_argument("--id", dest="gateway_id")
    add_listen_arguments(p)
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--region")
    p.add_argument("--default-policy")
    p.add_argument("--access-key", default=os.environ.get(ACCESS_KEY_ENV),
                   help=f"S3 access key registered at start (env {ACCESS_KEY_ENV})")
    p.add_argument("--secret-key", default=os.environ.get(SECRET_KEY_ENV),
                   help=f"its secret key (env {SECRET_KEY_ENV}; {SECRET_FLAG_WARNING}{SECRET_KEY_ENV})")
    add_limit_arguments(p)
    p.add_argument("--bucket-metrics", action="store_true", default=None,
                   help="count requests per bucket too (objstore_s3_bucket_requests_total{bucket,...}): one "
                        "series per bucket, operation and status class in use; leave off with many buckets")
    p.add_argument("--enable-fault-injection", action="store_true", default=None,
                   help="honour test-only switches such as --clock-offset (tests only)")
    p.add_argument("--clock-offset", dest="clock_offset_seconds", type=float,
                   help="seconds to add to this gateway's wall clock (tests only; needs --enable-fault-injection)")


# The slow-client and slow-node limits: flag -> GatewayConfig field (also flags of ``objstore up``).
LIMIT_FLAGS = {
    "--body-stall-timeout": ("body_stall_seconds", float,
                             "seconds a request body may stall, and after which it must average --body-min-rate "
                             "(default 60)"),
    "--body-min-rate": ("body_min_rate", float, "bytes/s a request body must average (default 1024; 0: no minimum)"),
    "--header-timeout": ("header_timeout_seconds", float,
                         "seconds a connection may wait for a request's headers, idle or partial (default 30)"),
    "--max-requests": ("max_concurrent_requests", int,
                       "requests served at once; more get 503 SlowDown (default 1024)"),
    "--straggler-timeout": ("straggler_timeout_seconds", float,
                            "seconds a write waits for a storage node once W others acknowledged, or for one "
                            "taking no data while W others keep up, before abandoning it (default 2)"),
    "--read-stall-timeout": ("read_stall_seconds", float,
                             "seconds a read waits for a replica or shard that sends nothing, before the next "
                             "(default 2)"),
    "--storage-timeout": ("storage_timeout_seconds", float,
                          "seconds a storage node may send nothing where no bound above applies (a write short "
                          "of W acknowledgements, the last replica or shard left to read) before the call fails "
                          "(default 30)"),
    "--suspect-timeout": ("suspect_seconds", float,
                          "seconds a storage node that failed a request (or was abandoned as a straggler) gets "
                          "no new blobs from the gateway and is read last (default 5)"),
    "--metadata-timeout": ("metadata_timeout_seconds", float,
                           "seconds a metadata call may take, retries included, before the request gets 503 "
                           "(default 3)"),
    "--stale-window": ("stale_window_seconds", float,
                       "seconds past expiry the gateway keeps using its cached credentials, bucket records and "
                       "cluster map while the metadata service has no majority, for quorum/one reads (default 300)"),
}


def add_limit_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the slow-client limits (:data:`LIMIT_FLAGS`) on ``p``."""
    add_flag_table(p, LIMIT_FLAGS)


def limit_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """The limit flags given in ``args``, as gateway command-line arguments."""
    return flag_table_argv(args, LIMIT_FLAGS)


def config_from_args(args: argparse.Namespace) -> GatewayConfig:
    """The validated GatewayConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(GatewayConfig, args, {
        "gateway_id": args.gateway_id, "metadata": csv_tuple(args.metadata), "region": args.region,
        "default_policy": args.default_policy, "access_key": args.access_key, "secret_key": args.secret_key,
        **flag_table_values(args, LIMIT_FLAGS),
        "bucket_metrics": getattr(args, "bucket_metrics", None),
        "enable_fault_injection": args.enable_fault_injection, "clock_offset_seconds": args.clock_offset_seconds,
    })
