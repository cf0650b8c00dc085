"""One run of the metadata benchmark: each system, writes then reads at each concurrency.

For every system (objstore's metadata service, then etcd clusters when asked) the runner
writes small version records at each concurrency (1, 16, 64 by default), then reads keys
it wrote, at the same concurrencies. Around each phase it reads the leader's durability
counters (entries and fsyncs) and the local servers' CPU time. Processes it spawned
(metadata nodes with ``--spawn``, etcd members) are stopped in ``finally`` blocks, and
their temporary directories removed, whatever happens.
"""
from __future__ import annotations

import os
import random
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from objstore.hlc import HLC
from objstore.types import ObjectVersion
from ops.bench_metadata.discovery import Target
from ops.bench_metadata.figures import PhaseResult, per_fsync, phase_result
from ops.bench_metadata.spawn import ETCD_MISSING, EtcdCluster, MetadataNodes, etcd_binary
from ops.bench_metadata.systems import EtcdSystem, ObjstoreSystem, cpu_seconds
from ops.bench_metadata.workload import bench_key, bench_version, run_closed_loop


@dataclass(frozen=True)
class RunSettings:
    """What to run: concurrencies, seconds per phase, and which systems."""

    concurrencies: tuple[int, ...] = (1, 16, 64)
    duration_s: float = 5.0
    target: Target | None = None  # running objstore nodes, or None to spawn
    spawn: int = 0  # metadata nodes to start (0: use ``target``)
    spawn_peers: bool = True  # give spawned nodes --peers (False: one plain single-node service)
    etcd_sizes: tuple[int, ...] = ()  # etcd cluster sizes to compare with, e.g. (1, 3)
    skip_objstore: bool = False
    seed: int = 1


@dataclass
class RunReport:
    phases: list[PhaseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: bool = False


class System(Protocol):
    name: str
    pids: list[int]

    async def write(self, key: str, version: ObjectVersion) -> None: ...
    async def read(self, key: str) -> None: ...
    async def durability(self) -> tuple[str, int, int] | None: ...


async def measure_system(system: System, settings: RunSettings, bucket: str, out: TextIO) -> list[PhaseResult]:
    """Write phases then read phases of ``system`` at each concurrency."""
    hlc = HLC("bench")
    rng = random.Random(settings.seed)
    written: list[str] = []
    results: list[PhaseResult] = []
    for op in ("write", "read"):
        for conc in settings.concurrencies:
            if op == "write":
                tag = f"c{conc}"

                async def call(w: int, i: int, tag: str = tag) -> None:
                    key = bench_key(tag, w, i)
                    await system.write(key, bench_version(bucket, key, hlc.next(), time.time(), owner="bench-metadata",
                                                          ordinal=i + w))
                    written.append(key)
            else:
                if not written:
                    break

                async def call(w: int, i: int) -> None:
                    await system.read(rng.choice(written))

            out.write(f"  {system.name:<20} {op:<5} {conc:>3} clients ... ")
            out.flush()
            before = await system.durability()
            cpu0 = cpu_seconds(system.pids)
            s = await run_closed_loop(call, conc, settings.duration_s)
            cpu1 = cpu_seconds(system.pids)
            after = await system.durability()
            batch = None
            if before and after and before[0] == after[0]:
                try:
                    batch = per_fsync(before[1], after[1], before[2], after[2])
                except ValueError:
                    batch = None
            r = phase_result(system.name, op, conc, s.latencies, s.errors, s.elapsed_s, per_fsync=batch,
                             client_cpu_s=s.client_cpu_s,
                             server_cpu_s=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
                             first_error=s.first_error)
            results.append(r)
            rate = f"{r.rate:,.0f}/s" if r.rate else "-"
            p50 = f"{r.p50_s * 1000:.2f} ms" if r.p50_s is not None else "-"
            out.write(f"{rate}  p50 {p50}" + (f"  {r.errors} errors ({r.first_error})" if r.errors else "") + "\n")
            out.flush()
    return results


async def run_objstore(settings: RunSettings, report: RunReport, out: TextIO) -> None:
    bucket = f"bench-meta-{uuid.uuid4().hex[:10]}"
    nodes: MetadataNodes | None = None
    tmp: tempfile.TemporaryDirectory | None = None
    try:
        if settings.spawn:
            tmp = tempfile.TemporaryDirectory(prefix="objstore-bench-meta-")
            nodes = MetadataNodes(settings.spawn, Path(tmp.name), secret=uuid.uuid4().hex, peers=settings.spawn_peers)
            out.write(f"starting {settings.spawn} metadata node(s): {', '.join(nodes.addresses)}\n")
            nodes.start()
            await nodes.wait_ready()
            addrs, secret, pids = nodes.addresses, nodes.secret, nodes.pids
            where = "spawned"
        else:
            assert settings.target is not None
            addrs, secret, pids = list(settings.target.addresses), settings.target.secret, list(settings.target.pids)
            where = settings.target.source
        system = ObjstoreSystem("objstore", addrs, secret, pids)
        try:
            await system.setup(bucket)
            out.write(f"objstore metadata at {', '.join(addrs)} ({where}); leader {system.leader}; bucket {bucket}\n")
            report.phases += await measure_system(system, settings, bucket, out)
        finally:
            await system.close()
        if not settings.spawn:
            report.notes.append(f"objstore: the records were written to bucket {bucket} (owner bench-metadata); "
                                "it was left in place")
    finally:
        if nodes is not None:
            nodes.stop()
        if tmp is not None:
            tmp.cleanup()


async def run_etcd(size: int, settings: RunSettings, report: RunReport, out: TextIO) -> None:
    binary = etcd_binary()
    if binary is None:
        report.notes.append(ETCD_MISSING)
        report.failed = True
        out.write(ETCD_MISSING + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="objstore-bench-etcd-") as tmp:
        cluster = EtcdCluster(size, Path(tmp), binary)
        try:
            out.write(f"starting etcd, {size} member(s): {', '.join(cluster.addresses)}\n")
            cluster.start()
            await cluster.wait_ready()
            name = f"etcd ({size} node{'s' if size > 1 else ''})"
            system = EtcdSystem(name, cluster.addresses, cluster.pids)
            try:
                await system.setup(f"bench-{uuid.uuid4().hex[:8]}")
                report.phases += await measure_system(system, settings, "bench", out)
            finally:
                await system.close()
        finally:
            cluster.stop()


async def run_benchmark(settings: RunSettings, out: TextIO) -> RunReport:
    """Every requested system in turn; failures to start a system are notes, not crashes."""
    report = RunReport()
    load_start = os.getloadavg()[0]
    if not settings.skip_objstore:
        await run_objstore(settings, report, out)
    for size in settings.etcd_sizes:
        await run_etcd(size, settings, report, out)
    if any(p.errors for p in report.phases):
        report.failed = True
    report.notes.append(f"machine: {os.cpu_count()} CPUs shared by the clients and servers; 1-minute load "
                        f"average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    return report


def version_of(binary: str | None) -> str | None:
    """``etcd --version``'s first line, for the report."""
    if binary is None:
        return None
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def describe(settings: RunSettings) -> dict[str, object]:
    return {"concurrencies": list(settings.concurrencies), "duration_s": settings.duration_s,
            "spawn": settings.spawn, "spawn_peers": settings.spawn_peers, "etcd_sizes": list(settings.etcd_sizes),
            "etcd_version": version_of(etcd_binary()) if settings.etcd_sizes else None}
