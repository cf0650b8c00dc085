"""The S3 gateway's command-line flags (``objstore gateway``)."""
from __future__ import annotations

import argparse
import os

from objstore.cli_args import ACCESS_KEY_ENV, SECRET_FLAG_WARNING, SECRET_KEY_ENV
from objstore.cli_args import add_config_argument, add_listen_arguments, csv_tuple, load_from_args
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


def config_from_args(args: argparse.Namespace) -> GatewayConfig:
    """The validated GatewayConfig the parsed flags describe; raises InvalidArgument."""
    return load_from_args(GatewayConfig, args, {
        "gateway_id": args.gateway_id, "metadata": csv_tuple(args.metadata), "region": args.region,
        "default_policy": args.default_policy, "access_key": args.access_key, "secret_key": args.secret_key,
    })
