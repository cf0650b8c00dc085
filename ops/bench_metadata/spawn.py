"""Processes the metadata benchmark starts itself: objstore metadata nodes and etcd members.

Both groups listen on 127.0.0.1 free ports, keep their data and logs under a directory
the caller owns, and are stopped by ``stop()`` (SIGTERM, then SIGKILL after a grace
period); the benchmark calls ``stop()`` in a ``finally`` so nothing outlives it.
Metadata nodes are started exactly as ``objstore up`` starts them
(``python -m ops.cli metadata --node-id ... --peers m1=...,m2=...``), so the same
command starts a replicated group once the service replicates.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from objstore.cluster.launcher import free_port
from ops.bench_metadata.discovery import etcd_initial_cluster, peers_arg

HOST = "127.0.0.1"


class SpawnError(Exception):
    """A process did not start or did not become healthy."""


@dataclass
class Proc:
    """One child process: its name, address (host:port) and how it is started."""

    name: str
    address: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen | None = None
    log_file: IO | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_file = open(self.log_path, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen(self.argv, stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = 15.0) -> float:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the seconds it took."""
        t0 = time.monotonic()
        if self.running():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        return time.monotonic() - t0

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


async def wait_healthy(procs: list[Proc], url_of, timeout: float = 60.0) -> None:
    """Poll each process's health URL until it answers 200; raises SpawnError on exit or timeout."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        for p in procs:
            while True:
                if not p.running():
                    raise SpawnError(f"{p.name} exited with code {p.popen.returncode if p.popen else '?'}:\n"
                                     f"{p.log_tail()}")
                try:
                    async with session.get(url_of(p), timeout=aiohttp.ClientTimeout(total=1)) as resp:
                        if resp.status == 200:
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise SpawnError(f"{p.name} at {p.address} not healthy after {timeout:g}s:\n{p.log_tail()}")
                await asyncio.sleep(0.02)


class ProcGroup:
    """Processes started together and stopped together."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.procs: list[Proc] = []

    @property
    def addresses(self) -> list[str]:
        return [p.address for p in self.procs]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None and p.running()]

    def start(self) -> None:
        for p in self.procs:
            p.start()

    def stop(self) -> None:
        for p in self.procs:
            if p.running() and p.popen is not None:
                p.popen.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.stop()


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
        ids = [f"m{i + 1}" for i in range(count)]
        addrs = [f"{HOST}:{free_port(HOST)}" for _ in ids]
        if not peers and count != 1:
            raise ValueError("only a single node runs without --peers")
        peer_list = peers_arg(ids, addrs)
        for nid, addr in zip(ids, addrs):
            data = base_dir / nid
            data.mkdir(parents=True, exist_ok=True)
            argv = [python, "-m", "ops.cli", "metadata", "--node-id", nid, "--data-dir", str(data),
                    "--host", HOST, "--port", addr.rsplit(":", 1)[1], "--secret", secret]
            if peers:
                argv += ["--peers", peer_list]
            self.procs.append(Proc(nid, addr, argv, base_dir / f"{nid}.log"))

    async def wait_ready(self, timeout: float = 60.0) -> None:
        await wait_healthy(self.procs, lambda p: f"http://{p.address}/health", timeout)


def etcd_binary() -> str | None:
    """The etcd server binary on PATH, or None when etcd is not installed."""
    return shutil.which("etcd")


ETCD_MISSING = ("etcd is not installed on this machine (no `etcd` on PATH); on Debian/Ubuntu: "
                "`apt-get install etcd-server`. The etcd comparison was skipped.")


class EtcdCluster(ProcGroup):
    """``count`` etcd members e1..eN on loopback, one fresh cluster in ``base_dir``."""

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
            self.procs.append(Proc(name, c_url.removeprefix("http://"), argv, base_dir / f"{name}.log"))

    async def wait_ready(self, timeout: float = 60.0) -> None:
        await wait_healthy(self.procs, lambda p: f"http://{p.address}/health", timeout)
