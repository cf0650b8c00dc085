"""Processes the metadata benchmark starts itself: objstore metadata nodes and etcd members.

Both groups listen on 127.0.0.1 free ports, keep their data and logs under a directory
the caller owns, and are stopped by ``stop()`` (SIGTERM, then SIGKILL after a grace
period; :mod:`objstore.cluster.supervisor`, as ``objstore up``); the benchmark calls
``stop()`` in a ``finally``, and a benchmark killed outright takes its children with it
(metadata nodes watch the pid in ``OBJSTORE_PARENT_PID``; etcd members get the kernel's
parent-death signal), so nothing outlives it. Metadata nodes are started exactly as
``objstore up`` starts them (``python -m ops.cli metadata --node-id ... --peers
m1=...,m2=...``), so the same command starts a replicated group once the service replicates.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from pathlib import Path

from objstore.cli_args import SECRET_ENV
from objstore.cluster.supervisor import Child, ChildFailed, free_port, stop_all
from objstore.cluster.supervisor import wait_healthy as _wait_healthy
from objstore.parent_watch import PARENT_PID_ENV
from ops.bench_metadata.discovery import etcd_initial_cluster, peers_arg

HOST = "127.0.0.1"


class SpawnError(Exception):
    """A process did not start or did not become healthy."""


async def wait_healthy(procs: list[Child], timeout: float = 60.0) -> None:
    """Wait for each process's /health to answer 200; raises SpawnError (with its log's tail) on exit or timeout."""
    for p in procs:
        try:
            await asyncio.to_thread(_wait_healthy, p, timeout, 0.02)
        except ChildFailed as exc:
            raise SpawnError(f"{exc}:\n{p.log_tail()}") from None


class ProcGroup:
    """Processes started together and stopped together."""

    end_with_parent = False  # children that do not watch OBJSTORE_PARENT_PID themselves

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.procs: list[Child] = []
        self.env: dict[str, str] | None = None  # the children's environment (None: this process's)

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.procs]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None and p.running()]

    def start(self) -> None:
        for p in self.procs:
            p.start(self.env, end_with_parent=self.end_with_parent)

    def stop(self, grace: float = 15.0) -> None:
        stop_all(self.procs, grace)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        await wait_healthy(self.procs, timeout)


class MetadataNodes(ProcGroup):
    """``count`` objstore metadata nodes named m1..mN, data in ``base_dir/<id>``.

    With ``peers`` (the default, as ``objstore up`` does) every node is given
    ``--peers``; without, a single node runs as the plain single-node service.
    """

    def __init__(self, count: int, base_dir: Path, secret: str, python: str = sys.executable,
                 peers: bool = True) -> None:
        super().__init__(base_dir)
        if count < 1:
            raise ValueError("at least one metadata node")
        self.secret = secret
        # The secret by environment, never on a command line; the nodes end with this process.
        self.env = {**os.environ, SECRET_ENV: secret, PARENT_PID_ENV: str(os.getpid())}
        ids = [f"m{i + 1}" for i in range(count)]
        addrs = [f"{HOST}:{free_port(HOST)}" for _ in ids]
        if not peers and count != 1:
            raise ValueError("only a single node runs without --peers")
        peer_list = peers_arg(ids, addrs)
        for nid, addr in zip(ids, addrs):
            data = base_dir / nid
            data.mkdir(parents=True, exist_ok=True)
            argv = [python, "-m", "ops.cli", "metadata", "--node-id", nid, "--data-dir", str(data),
                    "--host", HOST, "--port", addr.rsplit(":", 1)[1]]
            if peers:
                argv += ["--peers", peer_list]
            self.procs.append(Child("metadata", nid, addr, argv, base_dir / f"{nid}.log"))


def etcd_binary() -> str | None:
    """The etcd server binary on PATH, or None when etcd is not installed."""
    return shutil.which("etcd")


ETCD_MISSING = ("etcd is not installed on this machine (no `etcd` on PATH); on Debian/Ubuntu: "
                "`apt-get install etcd-server`. The etcd comparison was skipped.")


class EtcdCluster(ProcGroup):
    """``count`` etcd members e1..eN on loopback, one fresh cluster in ``base_dir``."""

    end_with_parent = True

    def __init__(self, count: int, base_dir: Path, binary: str) -> None:
        super().__init__(base_dir)
        names = [f"e{i + 1}" for i in range(count)]
        client = [f"http://{HOST}:{free_port(HOST)}" for _ in names]
        peer = [f"http://{HOST}:{free_port(HOST)}" for _ in names]
        initial = etcd_initial_cluster(names, peer)
        token = f"bench-{uuid.uuid4().hex[:8]}"
        for name, c_url, p_url in zip(names, client, peer):
            argv = [binary, "--name", name, "--data-dir", str(base_dir / name),
                    "--listen-client-urls", c_url, "--advertise-client-urls", c_url,
                    "--listen-peer-urls", p_url, "--initial-advertise-peer-urls", p_url,
                    "--initial-cluster", initial, "--initial-cluster-token", token,
                    "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"]
            self.procs.append(Child("etcd", name, c_url.removeprefix("http://"), argv, base_dir / f"{name}.log"))
