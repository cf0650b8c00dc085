"""Prometheus beside ``objstore up``: the targets file and, with ``--prometheus``, the server.

``write_targets`` writes ``<data-dir>/prometheus/targets.json`` (file-based service discovery,
atomically, so Prometheus never reads half a file) with one entry per process the launcher
started, labelled ``service`` (metadata, storage, gateway) and ``node_id``; HTTPS processes get
``__scheme__: https``. The launcher rewrites it on every start, so it always names the
current addresses (storage node ports change across restarts).

``prometheus_child`` prepares ``<data-dir>/prometheus/``: ``prometheus.yml`` and ``alerts.yml``
copied from ``ops/prometheus/`` (the shipped files; relative paths in them then resolve
there), with the scrape and evaluation interval asked for, the CA to verify HTTPS targets
and the metrics token file when the cluster uses them; and returns the Debian
``prometheus`` binary's command line as a :class:`Child` whose data (TSDB) is under
``<data-dir>/prometheus/data``. It runs under the launcher's umask 077 like every child.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Iterable

from objstore.cluster.supervisor import Child
from objstore.durable_io import atomic_write

SHIPPED = Path(__file__).resolve().parents[2] / "ops" / "prometheus"
INSTALL_HINT = ("Prometheus is not installed: install it with `sudo apt-get install prometheus` "
                "(Debian/Ubuntu; ops/install.sh does it), or start without --prometheus")


class PrometheusMissing(Exception):
    """No ``prometheus`` binary on PATH (the message says how to install it)."""


def targets(children: Iterable[Child], https: bool) -> list[dict]:
    """The file_sd entries of ``children``."""
    extra = {"__scheme__": "https"} if https else {}
    return [{"targets": [c.address], "labels": {"service": c.role, "node_id": c.node_id, **extra}}
            for c in children]


def write_targets(data_dir: Path, children: Iterable[Child], https: bool) -> Path:
    """Write ``<data-dir>/prometheus/targets.json``; returns its path."""
    folder = data_dir / "prometheus"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "targets.json"
    atomic_write(path, json.dumps(targets(children, https), indent=2).encode())
    return path


def config_text(interval: float, ca_file: str = "", token_file: str = "") -> str:
    """The shipped prometheus.yml with ``interval`` seconds between scrapes and evaluations,
    and the TLS CA and token file enabled when given."""
    text = (SHIPPED / "prometheus.yml").read_text()
    text = re.sub(r"(scrape_interval|evaluation_interval): \S+", rf"\1: {interval:g}s", text)
    text = text.replace("refresh_interval: 30s", f"refresh_interval: {max(interval, 1):g}s")
    if token_file:
        text += f"    authorization:\n      credentials_file: {json.dumps(token_file)}\n"
    if ca_file:
        text += f"    tls_config:\n      ca_file: {json.dumps(ca_file)}\n"
    return text


def prometheus_child(data_dir: Path, host: str, port: int, interval: float, ca_file: str = "",
                     token_file: str = "") -> Child:
    """Write the configuration under ``<data-dir>/prometheus`` and return the (not started)
    Prometheus child; raises PrometheusMissing without the binary."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise PrometheusMissing(INSTALL_HINT)
    folder = data_dir / "prometheus"
    folder.mkdir(mode=0o700, exist_ok=True)
    atomic_write(folder / "prometheus.yml", config_text(interval, ca_file, token_file).encode())
    atomic_write(folder / "alerts.yml", (SHIPPED / "alerts.yml").read_bytes())
    argv = [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={host}:{port}", "--storage.tsdb.retention.time=15d"]
    return Child("prometheus", "prometheus", f"{host}:{port}", argv, data_dir / "logs" / "prometheus.log")
