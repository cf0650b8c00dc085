"""Watching the cluster's processes during a benchmark: gateway RSS and CPU time.

``<data-dir>/cluster.json`` (written by ``objstore up``) lists every process with its
role and pid. When the benchmark's endpoint is that cluster's gateway and the pids are
alive on this machine, the gateway's RSS is sampled every 100 ms during each phase and
the CPU time of every cluster process (and of the benchmark itself) is read at each
phase's start and end. Otherwise the figures are reported as unavailable, with why.

Invariants: a pid is only watched if the process is alive and its command line names its
role (so a recycled pid is never mistaken for ours); a process that exits mid-run is
reported by name and its CPU time left out, never guessed.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import psutil

from ops.bench.stats import RssSummary, summarize_rss

SAMPLE_INTERVAL_S = 0.1


@dataclass(frozen=True)
class ClusterProcess:
    role: str
    node_id: str
    address: str
    pid: int | None


def read_cluster_info(data_dir: str | Path) -> dict | None:
    """The parsed ``cluster.json`` of a data dir, or None if it is missing or unreadable."""
    path = Path(data_dir) / "cluster.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _hostport(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}"


def cluster_processes(info: dict | None, endpoint: str) -> tuple[list[ClusterProcess], str | None]:
    """The processes listed for the cluster serving ``endpoint``, or ([], why they are unknown)."""
    if not info:
        return [], "no cluster.json in the data dir"
    if info.get("stopped"):
        return [], "cluster.json says the cluster was stopped"
    if info.get("endpoint") and _hostport(info["endpoint"]) != _hostport(endpoint):
        return [], f"the endpoint is not the gateway of this data dir ({info['endpoint']})"
    procs = [ClusterProcess(str(p.get("role", "?")), str(p.get("id", "?")), str(p.get("address", "")),
                            p.get("pid") if isinstance(p.get("pid"), int) else None)
             for p in info.get("processes", [])]
    if not procs:
        return [], "cluster.json lists no processes"
    return procs, None


def _open(proc: ClusterProcess) -> psutil.Process | None:
    if proc.pid is None:
        return None
    try:
        p = psutil.Process(proc.pid)
        if proc.role not in " ".join(p.cmdline()):
            return None
        return p
    except (psutil.Error, OSError):
        return None


def _cpu_clock(pid: int) -> float | None:
    """The CPU seconds process ``pid`` used so far (all its threads, those ended included) by
    its POSIX CPU-time clock, to the nanosecond (Linux's clock id for another process: its
    pid inverted, shifted by 3, with CPUCLOCK_SCHED); None where that is not available.
    ``/proc``'s user and system times count whole scheduler ticks (10 ms), so a short phase
    of a cheap workload could read 0 for every process."""
    try:
        return time.clock_gettime((~pid << 3) | 2)
    except (OSError, OverflowError, AttributeError):
        return None


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far; raises
    psutil.Error when it is gone."""
    proc = psutil.Process(pid)
    precise = _cpu_clock(pid)
    if precise is not None:
        return precise
    t = proc.cpu_times()
    return t.user + t.system


def _cpu_s(p: psutil.Process) -> float | None:
    try:
        if not p.is_running():
            return None
        precise = _cpu_clock(p.pid)
        if precise is not None:
            return precise
        t = p.cpu_times()
        return t.user + t.system
    except (psutil.Error, OSError):
        return None


@dataclass(frozen=True)
class PhaseUsage:
    """What the cluster's processes used during one phase."""

    gateway_rss: RssSummary | None
    cluster_cpu_s: float | None
    cpu_by_role: dict[str, float] = field(default_factory=dict)
    client_cpu_s: float | None = None
    notes: tuple[str, ...] = ()


class ProcessMonitor:
    """Samples the gateway's RSS and everyone's CPU time around each phase."""

    def __init__(self, processes: list[ClusterProcess], endpoint: str, unavailable: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._procs: list[tuple[ClusterProcess, psutil.Process]] = []
        self.notes: list[str] = []
        for cp in processes:
            p = _open(cp)
            if p is None:
                self.notes.append(f"{cp.role} {cp.node_id} (pid {cp.pid}) is not a local live process")
            else:
                self._procs.append((cp, p))
        gateways = [(cp, p) for cp, p in self._procs if cp.role == "gateway"]
        target = _hostport(endpoint)
        chosen = [g for g in gateways if _hostport("http://" + g[0].address) == target] or gateways
        self._gateway = chosen[0][1] if chosen else None
        self.gateway_unavailable = unavailable or (None if self._gateway else "gateway pid not known or not local")
        self._self = psutil.Process()
        self._clock = clock
        self._samples: list[int] = []
        self._cpu_start: dict[int, float] = {}
        self._client_start = 0.0
        self._task: asyncio.Task | None = None

    @property
    def cpu_available(self) -> bool:
        return bool(self._procs)

    @property
    def process_count(self) -> int:
        """How many of the cluster's processes are watched."""
        return len(self._procs)

    def _rss(self) -> int | None:
        if self._gateway is None:
            return None
        try:
            return self._gateway.memory_info().rss
        except (psutil.Error, OSError):
            return None

    async def _sample_loop(self) -> None:
        while True:
            rss = self._rss()
            if rss is not None:
                self._samples.append(rss)
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    def begin(self) -> None:
        """Start watching one phase."""
        self._samples = []
        self._cpu_start = {}
        for cp, p in self._procs:
            cpu = _cpu_s(p)
            if cpu is not None:
                self._cpu_start[p.pid] = cpu
        self._client_start = _cpu_s(self._self) or 0.0
        if self._gateway is not None:
            self._task = asyncio.create_task(self._sample_loop())

    async def end(self) -> PhaseUsage:
        """Stop watching the phase; what was used during it."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        rss = self._rss()
        if rss is not None:
            self._samples.append(rss)
        by_role: dict[str, float] = {}
        notes: list[str] = []
        for cp, p in self._procs:
            start = self._cpu_start.get(p.pid)
            now = _cpu_s(p)
            if start is None or now is None:
                notes.append(f"{cp.role} {cp.node_id} (pid {p.pid}) exited during the phase")
                continue
            by_role[cp.role] = by_role.get(cp.role, 0.0) + (now - start)
        client = _cpu_s(self._self)
        return PhaseUsage(
            gateway_rss=summarize_rss(self._samples),
            cluster_cpu_s=sum(by_role.values()) if self._procs else None,
            cpu_by_role=by_role,
            client_cpu_s=None if client is None else client - self._client_start,
            notes=tuple(notes),
        )


def pids_from(path: str | Path) -> list[int]:
    """Pids listed in a file (whitespace-separated) or in the ``*.pid`` files of a folder
    (as Swift's and many init scripts' run folders hold them); unreadable files are skipped."""
    target = Path(path)
    files = sorted(target.glob("*.pid")) if target.is_dir() else [target]
    pids: list[int] = []
    for f in files:
        try:
            pids.extend(int(tok) for tok in f.read_text().split() if tok.isdigit())
        except OSError:
            continue
    return pids


def find_processes(pids: Iterable[int] = (), pattern: str | None = None) -> list[psutil.Process]:
    """The live processes named by ``pids`` and those whose command line matches the regular
    expression ``pattern`` (never this process), each with all its descendants (server workers)."""
    me = psutil.Process().pid
    roots: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            roots[pid] = psutil.Process(pid)
        except (psutil.Error, OSError):
            continue
    if pattern:
        regex = re.compile(pattern)
        for p in psutil.process_iter(["cmdline"]):
            try:
                if p.pid != me and regex.search(" ".join(p.info["cmdline"] or ())):
                    roots[p.pid] = p
            except (psutil.Error, OSError):
                continue
    found = dict(roots)
    for p in roots.values():
        try:
            found.update((c.pid, c) for c in p.children(recursive=True))
        except (psutil.Error, OSError):
            continue
    found.pop(me, None)
    return list(found.values())


class PeerMonitor:
    """CPU time of another store's processes around each phase (found afresh at each start
    by pids and/or a command-line pattern, with their children); no memory sampling."""

    def __init__(self, find: Callable[[], list[psutil.Process]], unavailable: str | None = None) -> None:
        self._find = find
        self.gateway_unavailable = unavailable or "not an objstore cluster of this data dir"
        self.notes: list[str] = []
        self._start: dict[int, tuple[psutil.Process, float]] = {}
        self._self = psutil.Process()
        self._client_start = 0.0
        self.cpu_available = bool(find()) if unavailable is None else False
        if not self.cpu_available and unavailable is None:
            self.notes.append("no process of the compared endpoint found: its CPU time is not reported")

    def begin(self) -> None:
        self._start = {}
        if self.cpu_available:
            for p in self._find():
                cpu = _cpu_s(p)
                if cpu is not None:
                    self._start[p.pid] = (p, cpu)
        self._client_start = _cpu_s(self._self) or 0.0

    async def end(self) -> PhaseUsage:
        total, notes = 0.0, []
        for pid, (p, start) in self._start.items():
            now = _cpu_s(p)
            if now is None:
                notes.append(f"pid {pid} exited during the phase")
                continue
            total += now - start
        client = _cpu_s(self._self)
        return PhaseUsage(gateway_rss=None, cluster_cpu_s=total if self.cpu_available else None,
                          cpu_by_role={"peer": total} if self.cpu_available else {},
                          client_cpu_s=None if client is None else client - self._client_start, notes=tuple(notes))
