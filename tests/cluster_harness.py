"""Start and stop a real local cluster (``objstore up``) for tests.

``LocalCluster`` runs ``python -m ops.cli up`` on free ports in a temporary data dir,
waits until the gateway answers, and reads ``cluster.json``. ``stop()`` sends SIGTERM to
the launcher, waits for it, and then checks that no child process is left running (and
kills any it finds, failing loudly). ``ExtraGateway`` runs one more gateway, with flags of
its own, against a running cluster's metadata nodes.
"""
from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from objstore.cluster.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent
# The free space each test storage node keeps back, in place of the default (5% of the
# disk, at most 1 GiB; full below twice that): test clusters share the machine's disk and
# write little, so they must work on a machine with only a few GiB free.
TEST_RESERVE_BYTES = 64 * 1024 * 1024


class LocalCluster:
    def __init__(self, data_dir: Path, storage_nodes: int = 6, s3_port: int | None = None,
                 access_key: str = "TESTACCESSKEY0001", secret_key: str = "testsecretkey/0001+abc",
                 extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.storage_nodes = storage_nodes
        self.s3_port = s3_port or free_port()
        self.access_key = access_key
        self.secret_key = secret_key
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}
        self.output_path = self.data_dir.parent / f"{self.data_dir.name}-launcher.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> "LocalCluster":
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.output_path, "ab")
        self._offset = out.tell()
        cmd = [sys.executable, "-m", "ops.cli", "up", "--data-dir", str(self.data_dir),
               "--s3-port", str(self.s3_port), "--storage-nodes", str(self.storage_nodes),
               *(() if "--storage-reserve" in self.extra_args else ("--storage-reserve", str(TEST_RESERVE_BYTES))),
               *self.extra_args]  # the keys go by environment: a command line is visible to every user
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1",
                                          "OBJSTORE_ACCESS_KEY": self.access_key, "OBJSTORE_SECRET_KEY": self.secret_key})
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"objstore up exited with {self.proc.returncode}:\n{self.output()}")
            if "objstore is running" in self.output():
                self.info = json.loads((self.data_dir / "cluster.json").read_text())
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"objstore up did not start in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        """What the launcher printed since the last start."""
        try:
            return self.output_path.read_bytes()[getattr(self, "_offset", 0):].decode(errors="replace")
        except FileNotFoundError:
            return ""

    def processes(self, role: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.info.get("processes", []) if role is None or p["role"] == role]

    def pid_of(self, node_id: str) -> int:
        return next(p["pid"] for p in self.processes() if p["id"] == node_id)

    def child_pids(self) -> list[int]:
        return [p["pid"] for p in self.processes() if p.get("pid")]

    def kill_node(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        os.kill(self.pid_of(node_id), sig)

    def health(self, address: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{address}/health", timeout=2) as resp:
            return json.loads(resp.read())

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the launcher; assert that it left no child running."""
        pids = self.child_pids()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        leftovers = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    leftovers.append(pid)
                    p.kill()
            except psutil.NoSuchProcess:
                pass
        if leftovers:
            raise AssertionError(f"objstore up left processes running: {leftovers}")

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ExtraGateway:
    """``objstore gateway FLAGS`` on a free port against the metadata nodes of a running
    ``cluster``, serving its S3 keys: a gateway with settings (limits, TLS) of its own
    beside the cluster's. ``context``: the client TLS context its health is checked with
    (the gateway then serves HTTPS)."""

    def __init__(self, cluster: LocalCluster, log_path: Path, flags: tuple[str, ...] = (),
                 context: ssl.SSLContext | None = None, gateway_id: str = "gw-extra") -> None:
        self.cluster, self.log_path, self.flags, self.context, self.id = cluster, log_path, flags, context, gateway_id
        self.s3_port = free_port()
        self.access_key, self.secret_key = cluster.access_key, cluster.secret_key
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.context else 'http'}://127.0.0.1:{self.s3_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 30.0) -> "ExtraGateway":
        meta = ",".join(p["address"] for p in self.cluster.processes("metadata"))
        secret = json.loads((self.cluster.data_dir / "credentials.json").read_text())["cluster_secret"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "gateway", "--id", self.id, "--host", "127.0.0.1",
                 "--port", str(self.s3_port), "--metadata", meta, *self.flags],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "OBJSTORE_CLUSTER_SECRET": secret})
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health", context=self.context, timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"gateway {self.id} did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ExtraGateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
