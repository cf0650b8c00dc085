"""Child processes started, health-checked and stopped together.

What ``objstore up`` (:mod:`objstore.cluster.launcher`) and the metadata benchmark
(``ops/bench_metadata/spawn.py``) share: a :class:`Child` is one command line with a log
file and an HTTP address; :func:`wait_healthy` polls its ``/health``
(:func:`wait_all_healthy`: a group's, started together); :func:`stop_all` stops a group.

Invariants: a child runs in its own session (Ctrl-C in the terminal reaches only the
supervisor, which then stops its children in its own order), with stdout and stderr
appended to its log file and PYTHONUNBUFFERED=1. Stopping is SIGTERM to every running
child of the group first, then a wait against one shared deadline, then SIGKILL for
whatever is left; a stopped child's log file is closed. Nothing here reads a clock other
than ``time.monotonic`` for deadlines.
"""
from __future__ import annotations

import collections
import os
import random
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Mapping

from objstore.cluster.forking import ForkedProcess, ServiceForker, service_argv
from objstore.parent_watch import ending_with_parent
from objstore.tls import base_url


class ChildFailed(Exception):
    """A child did not become healthy; ``exited`` tells whether it died on the way."""

    def __init__(self, child: "Child", message: str, exited: bool) -> None:
        super().__init__(message)
        self.child = child
        self.exited = exited


@dataclass
class Child:
    """One child process: who it is, where it listens, how it is started, where it logs."""

    role: str
    node_id: str
    address: str  # "host:port" of its HTTP endpoint
    argv: list[str]
    log_path: Path
    proc: "subprocess.Popen | ForkedProcess | None" = None
    log_file: IO | None = field(default=None, repr=False)
    reported: bool = False  # its unexpected exit has been announced

    @property
    def name(self) -> str:
        return f"{self.role} {self.node_id}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def start(self, env: Mapping[str, str] | None = None, *, end_with_parent: bool = False,
              forker: "ServiceForker | None" = None) -> None:
        """Start the process (again, after a stop), appending to its log. With
        ``end_with_parent`` (a child that does not watch its parent itself, as objstore's
        services do: :mod:`objstore.parent_watch`), the kernel sends it SIGTERM when this
        process dies. With a ``forker``, a service's command line is forked from this
        process instead of exec'd (:mod:`objstore.cluster.forking`)."""
        self.log_file = open(self.log_path, "ab")
        env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
        if forker is not None and service_argv(self.argv) and not end_with_parent:
            self.proc = forker.fork(self.argv, env, self.log_file)  # type: ignore[assignment]
            if self.proc is not None:
                return
        self.proc = subprocess.Popen(self.argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True,
                                     preexec_fn=ending_with_parent() if end_with_parent else None)

    def terminate(self) -> None:
        """Send SIGTERM if it runs."""
        if self.running():
            try:
                self.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            except ProcessLookupError:
                pass

    def reap(self, deadline: float) -> None:
        """Wait for it until ``deadline`` (monotonic), then SIGKILL; close its log."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None

    def stop(self, grace: float = 15.0) -> float:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the seconds it took."""
        t0 = time.monotonic()
        self.terminate()
        self.reap(t0 + grace)
        return time.monotonic() - t0

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


def stop_all(children: Iterable[Child], grace: float) -> None:
    """SIGTERM every running child, then wait for all of them within ``grace`` seconds, then SIGKILL."""
    group = list(children)
    for c in group:
        c.terminate()
    deadline = time.monotonic() + grace
    for c in group:
        c.reap(deadline)


def _answers(child: Child, url: str, tls: ssl.SSLContext | None) -> bool:
    """Whether ``url`` answers 200 now; raises ChildFailed if the child has exited."""
    if child.exited():
        raise ChildFailed(child, f"{child.name} exited with code {child.proc.returncode}",  # type: ignore[union-attr]
                          exited=True)
    try:
        with urllib.request.urlopen(url, timeout=1, context=tls) as resp:
            return resp.status == 200
    except OSError:
        return False


def wait_healthy(child: Child, timeout: float = 30.0, interval: float = 0.05,
                 tls: ssl.SSLContext | None = None, path: str = "/health") -> None:
    """Poll ``http://<address><path>`` (https verified by the client context ``tls`` when
    given) until it answers 200; raises ChildFailed on exit or timeout."""
    wait_all_healthy([child], timeout, interval, tls, path)


def wait_all_healthy(children: Iterable[Child], timeout: float = 30.0, interval: float = 0.05,
                     tls: ssl.SSLContext | None = None, path: str = "/health") -> None:
    """:func:`wait_healthy` for children started together, polled in turn against one
    deadline: returns once every one answers; raises ChildFailed as soon as any of them
    exits, or at the deadline naming the first that has not answered."""
    pending = {child.name: (child, base_url(child.address, tls) + path) for child in children}
    deadline = time.monotonic() + timeout
    while True:
        for name, (child, url) in list(pending.items()):
            if _answers(child, url, tls):
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            child, url = next(iter(pending.values()))
            raise ChildFailed(child, f"{child.name} did not become healthy at {url} in {timeout:g}s", exited=False)
        time.sleep(interval)


# Ports handed to children are taken below the kernel's ephemeral range: a port the OS
# picked from that range is free when asked, but before the child binds it any outgoing
# connection on the machine may be given it as its local port (and then the child cannot
# listen). Below the range only another listener can take it.
LOWEST_PORT = 10000


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_RECENT_PORTS: "collections.OrderedDict[int, None]" = collections.OrderedDict()
_RECENT_LIMIT = 1024  # ports handed out lately, not handed out again while remembered


def reserve_ports(ports: Iterable[int]) -> None:
    """Ports a caller will bind later (an S3 port given on the command line, a metadata
    node's recorded address): :func:`free_port` does not hand them out meanwhile."""
    for port in ports:
        _remember(port)


def _remember(port: int) -> None:
    _RECENT_PORTS[port] = None
    _RECENT_PORTS.move_to_end(port)
    while len(_RECENT_PORTS) > _RECENT_LIMIT:
        _RECENT_PORTS.popitem(last=False)


CLAIM_SECONDS = 120.0  # how long a port handed out stays claimed against other processes


def _claim(port: int) -> bool:
    """Claim ``port`` for this user's processes for ``CLAIM_SECONDS``: False if another
    claim (of any process of this user, this one included) is younger. A marker file per
    port in a private folder under the temp dir, made with O_EXCL; at most one per port,
    so the folder stays bounded by the port range. Where no marker can be made, True."""
    folder = os.path.join(tempfile.gettempdir(), f"objstore-ports-{os.getuid()}")
    path = os.path.join(folder, str(port))
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
        if st.st_uid != os.getuid() or not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o077:
            return True  # not this user's private folder: no claims through it
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
        return True
    except FileExistsError:
        try:
            if time.time() - os.lstat(path).st_mtime < CLAIM_SECONDS:
                return False
            os.utime(path, follow_symlinks=False)  # an old claim: taken over
            return True
        except OSError:
            return False
    except OSError:
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now: a random one below the ephemeral range that
    binds now (the OS's choice where that range leaves too few below it). Callers that plan
    several ports before anything listens on them (``objstore up``, test harnesses in
    parallel processes) get distinct ones: a port handed out is claimed for
    ``CLAIM_SECONDS`` against every process of this user (:func:`_claim`), and never handed
    out again by this process among its last ``_RECENT_LIMIT``."""
    low = _ephemeral_low()
    port = 0
    if low - LOWEST_PORT >= 4096:
        rng = random.SystemRandom()
        for _ in range(64):
            candidate = rng.randrange(LOWEST_PORT, low)
            if candidate not in _RECENT_PORTS and port_free(host, candidate) and _claim(candidate):
                port = candidate
                break
    while not port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            candidate = s.getsockname()[1]
        if candidate not in _RECENT_PORTS:
            port = candidate
    _remember(port)
    return port


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` on ``host`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
