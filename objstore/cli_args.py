"""Command-line flags every service shares, and how they become a config.

Each service declares its own flags next to its config (``objstore/node/cli_args.py``,
``metadata/cli_args.py``, ``gateway/cli_args.py``) as ``add_arguments(parser)`` and
``config_from_args(args)``; the ``objstore`` command (``ops/cli``) and the services'
``python -m`` entry points both call them, so a flag is declared once.

Invariants: a flag left out is ``None`` and does not override the ``--config`` file; the
cluster secret comes from ``--secret`` or, failing that, env OBJSTORE_CLUSTER_SECRET, or
failing that the ``--secret-file`` flag's or the config file's ``secret_file``.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, TypeVar

from pathlib import Path

from objstore.config import load
from objstore.errors import InvalidArgument

T = TypeVar("T")

SECRET_ENV = "OBJSTORE_CLUSTER_SECRET"
ACCESS_KEY_ENV = "OBJSTORE_ACCESS_KEY"
SECRET_KEY_ENV = "OBJSTORE_SECRET_KEY"  # both: the S3 key pair the gateway registers at start
METRICS_TOKEN_ENV = "OBJSTORE_METRICS_TOKEN"  # the bearer token /metrics requires, if any
SECRET_FLAG_WARNING = "a secret on a command line is visible to other users of the machine (ps); prefer env "


def csv_tuple(value: str | None) -> tuple[str, ...] | None:
    """``"a, b,"`` -> ("a", "b"); None stays None (the flag was not given)."""
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_config_argument(p: argparse.ArgumentParser, config_name: str) -> None:
    """``--config FILE``: a TOML file (JSON if named ``*.json``) whose keys are ``config_name``'s
    field names."""
    p.add_argument("--config", help=f"TOML file (JSON if named *.json) with {config_name} fields as keys; "
                                    "flags override it")


def add_listen_arguments(p: argparse.ArgumentParser) -> None:
    """``--host``, ``--port``, ``--secret`` and the TLS flags: where a service listens, the
    cluster secret, and its certificates (:func:`add_tls_arguments`)."""
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--secret", help=f"cluster secret (or env {SECRET_ENV}; {SECRET_FLAG_WARNING}{SECRET_ENV})")
    p.add_argument("--secret-file", help="file holding the cluster secret (mode 0600), when no secret is given "
                                         "otherwise")
    add_tls_arguments(p)
    p.add_argument("--metrics-token-file", help=f"file holding the bearer token /metrics requires "
                   f"(or env {METRICS_TOKEN_ENV}); never the token itself on a command line")


def add_tls_arguments(p: argparse.ArgumentParser) -> None:
    """``--tls-cert``/``--tls-key`` (serve HTTPS) and ``--tls-ca`` (call the other services
    over HTTPS, verifying them against that CA bundle)."""
    p.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", help="PEM CA bundle: call metadata and storage nodes over HTTPS, verified against it")


# A table of flags: flag -> (config field, type, help). Roles declare optional tunables so,
# and ``objstore up`` passes on the ones given.
FlagTable = dict[str, tuple[str, type, str]]


def add_flag_table(p: argparse.ArgumentParser, flags: FlagTable) -> None:
    """Declare every flag of ``flags`` on ``p`` (default None: not given)."""
    for flag, (dest, kind, help_text) in flags.items():
        p.add_argument(flag, dest=dest, type=kind, help=help_text)


def flag_table_argv(args: argparse.Namespace, flags: FlagTable) -> tuple[str, ...]:
    """The flags of ``flags`` given in ``args``, as command-line arguments again."""
    return tuple(a for flag, (dest, _, _) in flags.items() if getattr(args, dest) is not None
                 for a in (flag, str(getattr(args, dest))))


def flag_table_values(args: argparse.Namespace, flags: FlagTable) -> dict[str, Any]:
    """Config field -> value (None when not given) of every flag of ``flags``."""
    return {dest: getattr(args, dest) for dest, _, _ in flags.values()}


def secret_of(args: argparse.Namespace) -> str | None:
    """The cluster secret: ``--secret``, else env OBJSTORE_CLUSTER_SECRET, else None."""
    return args.secret or os.environ.get(SECRET_ENV)


def metrics_token_of(args: argparse.Namespace) -> str | None:
    """The /metrics bearer token: the contents of ``--metrics-token-file``, else env
    OBJSTORE_METRICS_TOKEN, else None (no token, or the ``--config`` file's)."""
    path = getattr(args, "metrics_token_file", None)
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise InvalidArgument(f"cannot read --metrics-token-file {path}: {exc.strerror}") from None
    return os.environ.get(METRICS_TOKEN_ENV) or None


def load_from_args(cls: type[T], args: argparse.Namespace, overrides: dict[str, Any]) -> T:
    """``cls`` from ``--config``, then ``--host``/``--port``/secret/TLS flags, then ``overrides``.

    Raises InvalidArgument (see :func:`objstore.config.load`)."""
    return load(cls, args.config, {"host": args.host, "port": args.port, "secret": secret_of(args),
                                   "secret_file": args.secret_file,
                                   "tls_cert": args.tls_cert, "tls_key": args.tls_key, "tls_ca": args.tls_ca,
                                   "metrics_token": metrics_token_of(args), **overrides})
