"""How every admin command finds the cluster it talks to.

First match wins, for the addresses and the secret separately: ``--metadata
host:port,...`` and ``--secret`` (or env OBJSTORE_CLUSTER_SECRET); else ``--config FILE``,
the config file of any service on this host (its ``metadata`` addresses, or the addresses of
its ``peers``; its ``secret_file``; its ``tls_ca``), so ``objstore status --config
/etc/objstore/storage.toml`` works on every host of a deployment; else the
``cluster.json`` and ``credentials.json`` that ``objstore up`` writes in ``--data-dir``
(default ./objstore-data). Pure apart from reading those two files. The CA bundle to
verify the nodes with (HTTPS) is ``--tls-ca``, else the ``tls_ca`` of ``cluster.json``;
without one the nodes are called over plain HTTP.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from objstore.config import read_config_file, read_secret_file
from objstore.errors import ObjstoreError
from objstore.tls import client_context
from ops.cli.output import UNAVAILABLE, USAGE, CommandError

NO_CLUSTER = ("no cluster found in {data_dir}: start one with `objstore up --data-dir {data_dir}`, "
              "or pass the --data-dir of a running `objstore up`, or --metadata and --secret")


@dataclass(frozen=True)
class ClusterRef:
    """Where a cluster's metadata nodes are, and the secret to talk to them."""

    metadata: tuple[str, ...]
    secret: str
    data_dir: Path
    tls_ca: str = ""  # a CA bundle: the nodes serve HTTPS ("" plain HTTP)
    gateways: tuple[str, ...] = ()  # S3 gateways' host:port (--gateway, else cluster.json's), for /metrics

    def tls(self) -> ssl.SSLContext | None:
        """The client context to call the nodes with (None: plain HTTP)."""
        return client_context(self.tls_ca)

    def unreachable(self, exc: BaseException) -> CommandError:
        """The error for a metadata service that did not answer (exit code 2: unavailable)."""
        return CommandError(f"cannot reach the metadata service at {', '.join(self.metadata)}: {exc}; "
                            "is the cluster running? (`objstore up`, or check --metadata)", UNAVAILABLE)


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``--metadata`` and ``--secret``: the flags :func:`find_cluster` reads."""
    p.add_argument("--data-dir", default="./objstore-data", help="local cluster data dir (default ./objstore-data)")
    p.add_argument("--metadata", help="comma-separated host:port of metadata nodes")
    p.add_argument("--secret", help="cluster secret (or env OBJSTORE_CLUSTER_SECRET)")
    p.add_argument("--tls-ca", help="PEM CA bundle: the nodes serve HTTPS, verified against it "
                                    "(default: the one `objstore up --tls-dir` recorded)")
    p.add_argument("--config", help="the config file of a service on this host (storage, metadata or gateway): "
                                    "the cluster's metadata addresses, secret file and CA bundle come from it")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}", USAGE) from None


def find_cluster(args: argparse.Namespace) -> ClusterRef:
    """The cluster the flags, env or local data dir name; raises CommandError (exit 2) if none."""
    secret = args.secret or os.environ.get("OBJSTORE_CLUSTER_SECRET")
    addrs = tuple(a.strip() for a in (args.metadata or "").split(",") if a.strip())
    d = Path(args.data_dir)
    tls_ca = getattr(args, "tls_ca", None) or ""  # callers building a Namespace may leave it out
    if getattr(args, "config", None):
        addrs, secret, tls_ca = from_service_config(args.config, addrs, secret, tls_ca)
    gateways = tuple(a.strip() for a in (getattr(args, "gateway", None) or "").split(",") if a.strip())
    if not addrs or not tls_ca or not gateways:
        info = _read_json(d / "cluster.json")
        if not addrs:
            addrs = tuple(p["address"] for p in info.get("processes", []) if p.get("role") == "metadata")
        tls_ca = tls_ca or info.get("tls_ca", "")
        gateways = gateways or tuple(p["address"] for p in info.get("processes", []) if p.get("role") == "gateway")
    if not secret:
        secret = _read_json(d / "credentials.json").get("cluster_secret")
    if not addrs or not secret:
        raise CommandError(NO_CLUSTER.format(data_dir=d), USAGE)
    return ClusterRef(addrs, secret, d, tls_ca, gateways)


def from_service_config(path: str, addrs: tuple[str, ...], secret: str | None,
                        tls_ca: str) -> tuple[tuple[str, ...], str | None, str]:
    """Fill what is not yet known (empty) from a service's config file: the metadata
    addresses (``metadata``, or the addresses of ``peers``), the secret (its ``secret_file``)
    and the CA bundle (``tls_ca``). Raises CommandError (exit 2) for an unreadable file."""
    try:
        cfg = read_config_file(path)
        if not addrs:
            addrs = tuple(cfg.get("metadata") or (p.partition("=")[2] for p in cfg.get("peers", ())))
        if not secret and cfg.get("secret_file"):
            secret = read_secret_file(cfg["secret_file"])
    except ObjstoreError as exc:
        raise CommandError(exc.message, USAGE) from None
    return addrs, secret, tls_ca or cfg.get("tls_ca", "")


def run_admin(args: argparse.Namespace, action: Callable[[argparse.Namespace, ClusterRef], Awaitable[int]]) -> int:
    """Find the cluster (:func:`find_cluster`) and run ``action`` against it; a failure to
    reach it becomes :meth:`ClusterRef.unreachable` (CommandErrors pass as they are)."""
    cluster = find_cluster(args)
    try:
        return asyncio.run(action(args, cluster))
    except CommandError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported the same way
        raise cluster.unreachable(exc) from None
