"""Where the metadata nodes to benchmark are, and the cluster secret to talk to them.

Three sources, first match wins: ``--metadata host:port,...`` (with ``--secret`` or env
``OBJSTORE_CLUSTER_SECRET``); the ``cluster.json``/``credentials.json`` that ``objstore up``
writes in its data dir (processes with role "metadata"); or none, meaning the benchmark
spawns its own nodes (``--spawn N``). Pure apart from reading those two files.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


class DiscoveryError(Exception):
    """No usable metadata nodes or no secret."""


@dataclass(frozen=True)
class Target:
    """Metadata nodes to measure: their addresses, the secret, their pids when local."""

    addresses: tuple[str, ...]
    secret: str
    pids: tuple[int, ...] = ()
    source: str = "flags"


def parse_addresses(value: str | None) -> tuple[str, ...]:
    """``"h:p, h2:p2"`` -> ("h:p", "h2:p2"); raises DiscoveryError for an entry without a port."""
    out = []
    for raw in (value or "").split(","):
        a = raw.strip()
        for scheme in ("http://", "https://"):
            if a.startswith(scheme):
                a = a[len(scheme):]
        a = a.rstrip("/")
        if not a:
            continue
        host, sep, port = a.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise DiscoveryError(f"metadata address {raw.strip()!r} is not host:port")
        out.append(a)
    return tuple(out)


def metadata_processes(cluster_info: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The metadata nodes' addresses and (known) pids listed in a ``cluster.json`` document."""
    procs = [p for p in cluster_info.get("processes", []) if p.get("role") == "metadata"]
    return (tuple(str(p["address"]) for p in procs),
            tuple(int(p["pid"]) for p in procs if p.get("pid") is not None))


def find_target(metadata: str | None, secret: str | None, data_dir: str | None,
                env: Mapping[str, str]) -> Target:
    """The nodes to benchmark from flags, env and a data dir; raises DiscoveryError."""
    secret = secret or env.get("OBJSTORE_CLUSTER_SECRET") or None
    addrs = parse_addresses(metadata)
    if addrs:
        if not secret:
            raise DiscoveryError("--metadata needs the cluster secret: --secret or OBJSTORE_CLUSTER_SECRET")
        return Target(addrs, secret, (), "flags")
    if not data_dir:
        raise DiscoveryError("no metadata nodes: give --metadata, --data-dir of a running `objstore up`, or --spawn N")
    d = Path(data_dir)
    cluster_json = d / "cluster.json"
    if not cluster_json.exists():
        raise DiscoveryError(f"no cluster.json in {d}: give --metadata, --data-dir of a running `objstore up`, "
                             "or --spawn N")
    info = json.loads(cluster_json.read_text())
    if info.get("stopped"):
        raise DiscoveryError(f"the cluster in {d} is stopped (cluster.json says so)")
    addrs, pids = metadata_processes(info)
    if not addrs:
        raise DiscoveryError(f"{cluster_json} lists no metadata process")
    if not secret:
        creds = d / "credentials.json"
        if creds.exists():
            secret = json.loads(creds.read_text()).get("cluster_secret")
    if not secret:
        raise DiscoveryError(f"no cluster secret: give --secret, OBJSTORE_CLUSTER_SECRET, or {d}/credentials.json")
    return Target(addrs, secret, pids, f"{cluster_json}")


def peers_arg(node_ids: list[str], addresses: list[str]) -> str:
    """The ``--peers`` value naming every node: ``m1=h:p,m2=h:p``."""
    if len(node_ids) != len(addresses):
        raise ValueError("one address per node id")
    return ",".join(f"{n}={a}" for n, a in zip(node_ids, addresses))


def etcd_initial_cluster(names: list[str], peer_urls: list[str]) -> str:
    """etcd's ``--initial-cluster`` value: ``e1=http://h:p,e2=...``."""
    if len(names) != len(peer_urls):
        raise ValueError("one peer URL per name")
    return ",".join(f"{n}={u}" for n, u in zip(names, peer_urls))
