"""Hosts on one machine: a Linux network namespace per host, joined by a bridge.

``Network(["h1", "h2", ...])`` makes, when :meth:`Network.create` runs, a *switch* namespace
holding a bridge, and per host a namespace with loopback up and one interface ``eth0``
(a veth pair whose other end is on the bridge) with its own address in 198.18.0.0/15
(:func:`~tests.harness.hosts.rules.host_address`). Nothing is added to the machine's own
namespace: its interfaces, routes and firewall are never touched, and traffic only flows
between namespaces this run made. Processes run inside a host with :meth:`Network.popen`
(``ip netns exec``), so each host has its own address and ports may repeat across hosts;
Python code runs inside a host with :func:`run_in_host` or a :func:`host_executor` (threads
that joined the namespace: every socket they open belongs to that host).

Faults are applied with :meth:`Network.apply` (a :class:`~tests.harness.hosts.rules.Faults`:
iptables rules replaced whole inside every host namespace, and a ``tc tbf`` rate limit on
``eth0``); :meth:`Network.heal` removes them all.

Clean-up, the invariant everything here serves: every name made by a run starts with
``objh<pid>x<random>-`` (the pid of the process that made it). :meth:`Network.close` kills
the processes started inside its namespaces (by pid, as ``ip netns pids`` lists them) and
deletes every namespace it made, which removes their interfaces and rules with them; it runs
from the test's finalizer, from an ``atexit`` hook (an interrupted run) and is idempotent.
A run that was killed outright leaves its namespaces behind: :func:`sweep_stale` (run by
every :meth:`Network.create`) deletes those whose maker pid is no longer alive.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from tests.harness.hosts.rules import HEALED, IFACE, PREFIX_LEN, Faults, host_address, iptables_ruleset, tc_commands

T = TypeVar("T")
NAME_PREFIX = "objh"
_NAME = re.compile(rf"^{NAME_PREFIX}(\d+)x[0-9a-f]+-")
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"


def unavailable_reason() -> str | None:
    """Why hosts cannot be made here (not root, no ``ip``/``iptables``, namespaces refused),
    or None when they can. Tests skip with this reason."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables-restore", "tc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 iptables)"
    probe = f"{NAME_PREFIX}{os.getpid()}x{secrets.token_hex(3)}-probe"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"cannot create a network namespace: {exc.stderr.strip()}"
    try:
        restore = subprocess.run(["ip", "netns", "exec", probe, "iptables-restore"], input=iptables_ruleset(
            "probe", HEALED, {}), capture_output=True, text=True)
        if restore.returncode != 0:
            return f"iptables does not work in a namespace: {restore.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, input: str | None = None) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, input=input).stdout


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace(ns: str) -> None:
    """SIGKILL every process inside ``ns`` (all started by this harness), then delete it."""
    for _ in range(50):
        pids = [int(p) for p in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                               text=True).stdout.split()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def sweep_stale(prefix: str = NAME_PREFIX) -> list[str]:
    """Delete the namespaces (and the processes in them) of runs whose maker is gone.
    Returns the names deleted."""
    gone = []
    for ns in _namespaces():
        m = _NAME.match(ns)
        if ns.startswith(prefix) and m and not _pid_alive(int(m.group(1))):
            _kill_namespace(ns)
            gone.append(ns)
    return gone


@dataclass(frozen=True)
class Host:
    """One host: its name in the test, its namespace, its address."""

    name: str
    namespace: str
    address: str


class Network:
    """A switch and hosts; see the module docstring."""

    def __init__(self, hosts: Sequence[str]) -> None:
        if len(set(hosts)) != len(hosts) or not hosts:
            raise ValueError(f"host names must be distinct and at least one: {hosts}")
        self.run_id = f"{NAME_PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
        self.hosts = {name: Host(name, f"{self.run_id}-{name}", host_address(i)) for i, name in enumerate(hosts)}
        self.switch = f"{self.run_id}-sw"
        self.faults = HEALED
        self._made: list[str] = []
        self._procs: list[subprocess.Popen] = []
        self._closed = False

    # --- making and removing -------------------------------------------------------------
    def create(self) -> "Network":
        sweep_stale()
        atexit.register(self.close)
        try:
            self._add_namespace(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for i, h in enumerate(self.hosts.values()):
                self._add_namespace(h.namespace)
                port = f"p{i}"
                _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", IFACE,
                    "netns", h.namespace)
                _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
                _ip("-n", h.namespace, "addr", "add", f"{h.address}/{PREFIX_LEN}", "dev", IFACE)
                _ip("-n", h.namespace, "link", "set", IFACE, "up")
                _ip("-n", h.namespace, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)

    def close(self) -> None:
        """Stop every process in this run's hosts and delete its namespaces (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for p in self._procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self._made):
            _kill_namespace(ns)
        self._made.clear()
        atexit.unregister(self.close)

    def __enter__(self) -> "Network":
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running things inside a host ----------------------------------------------------
    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    @property
    def addresses(self) -> dict[str, str]:
        return {n: h.address for n, h in self.hosts.items()}

    def popen(self, host: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        """Start ``argv`` inside ``host`` (killed by :meth:`close` if still running)."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.hosts[host].namespace, *argv], **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, host: str, argv: Sequence[str], input: str | None = None, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run ``argv`` inside ``host`` to completion; its output as text."""
        return subprocess.run(["ip", "netns", "exec", self.hosts[host].namespace, *argv], input=input,
                              capture_output=True, text=True, check=check, timeout=timeout)

    # --- faults ---------------------------------------------------------------------------
    def apply(self, faults: Faults) -> None:
        """Make ``faults`` the faults in force (replacing, not adding to, the previous ones).
        Every host is changed at once (one thread each); a host's rate limit is only touched
        when it has or had one."""
        addrs = self.addresses
        limited = {h for h, _ in faults.rates} | {h for h, _ in self.faults.rates}

        def one(name: str) -> None:
            self.run(name, ["iptables-restore"], input=iptables_ruleset(name, faults, addrs))
            if name in limited:
                for cmd in tc_commands(name, faults):
                    self.run(name, cmd, check=cmd[2] != "del")

        with ThreadPoolExecutor(len(self.hosts)) as pool:
            list(pool.map(one, self.hosts))
        self.faults = faults

    def heal(self) -> None:
        self.apply(HEALED)

    def rules(self, host: str) -> str:
        """``iptables -S`` inside ``host`` (what is really in force)."""
        return self.run(host, ["iptables", "-S"]).stdout


_libc = ctypes.CDLL(None, use_errno=True)


def join_namespace(host: Host) -> None:
    """Move the calling thread (only it) into ``host``'s network namespace."""
    fd = os.open(os.path.join(NETNS_DIR, host.namespace), os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {host.namespace}: {os.strerror(err)}")
    finally:
        os.close(fd)


def host_executor(host: Host, workers: int = 4) -> ThreadPoolExecutor:
    """A thread pool whose threads all live in ``host``'s namespace: whatever runs there
    (boto3 calls, an asyncio loop) opens its sockets inside that host. Shut it down after."""
    return ThreadPoolExecutor(workers, thread_name_prefix=f"in-{host.name}", initializer=join_namespace,
                              initargs=(host,))


def run_in_host(host: Host, fn: Callable[[], T]) -> T:
    """Call ``fn()`` in a new thread inside ``host``'s namespace; its result or exception.
    A socket keeps the namespace it was made in, so one made here may be used anywhere."""
    with host_executor(host, 1) as pool:
        return pool.submit(fn).result()
