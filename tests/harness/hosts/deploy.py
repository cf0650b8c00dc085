"""A cluster started from the example deployment of ``ops/deploy/examples/<layout>/``.

Each example layout has ``layout.toml`` (its hosts and their addresses) and a folder per
host with the config file of each service that host runs, exactly as a user installs them
in ``/etc/objstore/``. :func:`render_configs` copies a host's files with the example
addresses replaced by the namespace addresses of the :class:`~tests.harness.hosts.netns.Network`
and ``/var/lib/objstore`` and ``/etc/objstore`` replaced by that host's folders under the
test's directory (pure text substitution, nothing else changes), and writes the cluster
secret to the host's ``etc/secret`` (0600), where every config's ``secret_file`` points.
:class:`Deployment` then runs ``objstore <role> --config FILE`` inside each host
(metadata first, then storage, then gateways; the S3 key pair reaches the gateways by
environment) plus only the extra flags a test gives (fast Raft ticks, fault injection):
the files themselves are the user's.

Invariants: every process runs inside its host's namespace and is stopped by
:meth:`Deployment.stop` (or, failing that, by the network's own clean-up); health checks and
clients run from a host of their own (``client`` by default) that no fault in the layout's
hosts touches unless a test says so.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from tests.cluster_harness import TEST_RESERVE_BYTES
from tests.harness.eventually import eventually
from tests.harness.hosts.netns import Network, run_in_host

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "ops" / "deploy" / "examples"
ROLES = ("metadata", "storage", "gateway")  # the order services start in
CLIENT = "client"
ACCESS_KEY, SECRET_KEY = "HOSTSACCESSKEY01", "hosts-secret-key/0001+abc"
PORTS = {"metadata": 7000, "storage": 7100, "gateway": 9000}
T = TypeVar("T")


def layout_hosts(layout: str, joining: bool = True) -> dict[str, str]:
    """The hosts of an example layout and their example addresses, in order (without the
    hosts marked ``joins``, which join a running cluster later, unless ``joining``)."""
    doc = tomllib.loads((EXAMPLES / layout / "layout.toml").read_text())
    return {name: h["address"] for name, h in doc["hosts"].items() if joining or not h.get("joins")}


def substitutions(layout: str, addresses: Mapping[str, str], host_dir: Path) -> list[tuple[str, str]]:
    """What :func:`render_configs` replaces in one host's files (pure)."""
    example = layout_hosts(layout)
    # Longest first, so 10.0.0.1 can never replace the start of 10.0.0.11.
    subs = sorted(((a, addresses[h]) for h, a in example.items() if h in addresses), key=lambda s: -len(s[0]))
    return subs + [("/var/lib/objstore", str(host_dir / "data")), ("/etc/objstore", str(host_dir / "etc"))]


def render(text: str, subs: Iterable[tuple[str, str]]) -> str:
    for old, new in subs:
        text = text.replace(old, new)
    return text


def render_configs(layout: str, host: str, addresses: Mapping[str, str], host_dir: Path,
                   secret: str) -> dict[str, Path]:
    """Write ``host``'s config files (role -> path) and its secret file; see the module docstring."""
    subs = substitutions(layout, addresses, host_dir)
    etc = host_dir / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (host_dir / "data").mkdir(mode=0o700, exist_ok=True)
    secret_path = etc / "secret"
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    out = {}
    for role in ROLES:
        src = EXAMPLES / layout / host / f"{role}.toml"
        if src.exists():
            out[role] = etc / f"{role}.toml"
            out[role].write_text(render(src.read_text(), subs))
    return out


@dataclass
class Service:
    """One service of the deployment: where it runs, its config, its process."""

    host: str
    role: str
    config: Path
    address: str  # the host:port others reach it at
    log: Path
    argv: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.role}@{self.host}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Deployment:
    """The services of one example layout on ``net`` (whose hosts are the layout's plus
    :data:`CLIENT`). ``extra`` holds flags per role added after ``--config``."""

    def __init__(self, net: Network, layout: str, workdir: Path, extra: Mapping[str, Sequence[str]] | None = None,
                 hosts: Sequence[str] | None = None) -> None:
        self.net = net
        self.layout = layout
        self.workdir = workdir
        self.extra = {r: list(v) for r, v in (extra or {}).items()}
        self.secret = secrets.token_hex(16)
        self.services: list[Service] = []
        for host in hosts or layout_hosts(layout, joining=False):
            self.add_host(host)

    def add_host(self, host: str, layout: str | None = None) -> list[Service]:
        """Render ``host``'s configs (from ``layout``, default this deployment's) and plan its
        services; :meth:`start_service` starts them."""
        host_dir = self.workdir / host
        configs = render_configs(layout or self.layout, host, self.net.addresses, host_dir, self.secret)
        added = []
        for role, path in configs.items():
            s = Service(host, role, path, f"{self.net[host].address}:{PORTS[role]}", host_dir / f"{role}.log")
            reserve = ("--reserve-bytes", str(TEST_RESERVE_BYTES)) if role == "storage" else ()
            s.argv = [sys.executable, "-m", "ops.cli", role, "--config", str(path), *reserve, *self.extra.get(role, ())]
            self.services.append(s)
            added.append(s)
        return added

    # --- processes --------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> "Deployment":
        """Start every service at once (storage nodes and gateways retry until the metadata
        group has a leader), then wait until all are healthy and registered."""
        for role in ROLES:
            for s in self.services:
                if s.role == role:
                    self.start_service(s, wait=False)
        for s in self.services:
            self.wait_healthy(s, timeout)
        self.wait_registered(timeout)
        return self

    def start_service(self, s: Service, wait: bool = True, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBJSTORE_")}
        env["PYTHONUNBUFFERED"] = "1"
        if s.role == "gateway":
            env["OBJSTORE_ACCESS_KEY"], env["OBJSTORE_SECRET_KEY"] = ACCESS_KEY, SECRET_KEY
        with open(s.log, "ab") as log:
            s.proc = self.net.popen(s.host, s.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        if wait:
            self.wait_healthy(s, timeout)

    def stop_service(self, s: Service, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if s.running():
            assert s.proc is not None
            s.proc.send_signal(sig)
            try:
                s.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                s.proc.kill()
                s.proc.wait()

    def stop(self) -> None:
        """Stop every service: gateways, then storage, then metadata; the services of a role
        together (SIGTERM to each, then a wait for all, SIGKILL for any left after 15 s)."""
        for role in reversed(ROLES):
            group = [s for s in self.services if s.role == role and s.running()]
            for s in group:
                assert s.proc is not None
                s.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for s in group:
                assert s.proc is not None
                try:
                    s.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()

    def service(self, role: str, host: str) -> Service:
        return next(s for s in self.services if s.role == role and s.host == host)

    def of_role(self, role: str) -> list[Service]:
        return [s for s in self.services if s.role == role]

    def output(self, s: Service) -> str:
        try:
            return s.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- looking from the client host -------------------------------------------------------
    def from_client(self, fn: Callable[[], T], host: str = CLIENT) -> T:
        return run_in_host(self.net[host], fn)

    def get_json(self, address: str, path: str, timeout: float = 2.0) -> Any:
        def get() -> Any:
            with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as resp:
                return json.loads(resp.read())
        return self.from_client(get)

    def health(self, address: str) -> dict | None:
        """The ``/health`` answer of the service at ``address``, None if it does not answer."""
        try:
            return self.get_json(address, "/health", timeout=1.0)
        except OSError:
            return None

    def wait_healthy(self, s: Service, timeout: float = 60.0) -> None:
        def healthy() -> bool:
            if s.proc is not None and s.proc.poll() is not None:
                raise RuntimeError(f"{s.name} exited with {s.proc.returncode}:\n{self.output(s)[-3000:]}")
            return self.health(s.address) is not None

        eventually(healthy, timeout, 0.1, message=lambda: f"{s.name} to answer /health:\n{self.output(s)[-3000:]}")

    def wait_registered(self, timeout: float = 60.0) -> None:
        """Until every gateway's cluster map holds every storage node of the deployment."""
        want = len(self.of_role("storage"))
        for gw in self.of_role("gateway"):
            eventually(lambda: (self.health(gw.address) or {}).get("storage_nodes", 0) >= want, timeout, 0.1,
                       message=f"{gw.name} to see {want} storage nodes")

    def endpoint(self, gateway_host: str) -> str:
        return f"http://{self.service('gateway', gateway_host).address}"

    def objstore(self, host: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run the ``objstore`` command inside ``host`` (no secret in its environment: it must
        come from the config files)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBJSTORE_")}
        return subprocess.run(["ip", "netns", "exec", self.net[host].namespace, sys.executable, "-m", "ops.cli", *args],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)
