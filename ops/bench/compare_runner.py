"""One ``--compare`` run: the same workloads against two endpoints, interleaved round by round.

Both endpoints get the same keys (one run id), the same bytes (shared payloads) and the
same concurrency; for each workload the rounds run A B A B ... (``compare.interleave``), so
slow drifts of a shared machine fall on both sides alike. A's CPU comes from its objstore
data dir (cluster.json); B's from ``--compare-pids-from`` and/or ``--compare-process-pattern``
(with the children of those processes), when given.

Invariants: as for a single run, every key either side tried to write is deleted at the
end and each bucket this run created is deleted, whatever happened (errors, Ctrl-C).
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace
from typing import Callable, TextIO

from ops.bench.compare import CompareResult, Endpoint, compare_workload, disk_ceiling, interleave
from ops.bench.loadgen import Payload
from ops.bench.monitor import PeerMonitor, ProcessMonitor, find_processes, pids_from
from ops.bench.results import PhaseResult
from ops.bench.runner import BenchRun, cluster_monitor, open_client, plan_phases
from ops.bench.settings import BenchSettings, CompareSettings


async def idle_cores(monitor: ProcessMonitor | PeerMonitor, seconds: float,
                     clock: Callable[[], float] = time.monotonic) -> float | None:
    """CPU seconds per second the monitored processes use over ``seconds`` with no load; None if unknown."""
    if seconds <= 0 or not monitor.cpu_available:
        return None
    monitor.begin()
    t0 = clock()
    await asyncio.sleep(seconds)
    usage = await monitor.end()
    elapsed = clock() - t0
    return None if usage.cluster_cpu_s is None or elapsed <= 0 else usage.cluster_cpu_s / elapsed


def peer_monitor(c: CompareSettings) -> tuple[PeerMonitor, str]:
    """A monitor of the compared endpoint's processes, and a phrase saying where its CPU figures come from."""
    if not c.pids_from and not c.process_pattern:
        why = "not measured (give --compare-pids-from or --compare-process-pattern)"
        return PeerMonitor(lambda: [], unavailable=why), why
    pid_source = c.pids_from

    def find() -> list:
        return find_processes(pids_from(pid_source) if pid_source else [], c.process_pattern)

    monitor = PeerMonitor(find)
    sources = " and ".join(x for x in (pid_source and f"pids from {pid_source}",
                                      c.process_pattern and f"processes matching {c.process_pattern!r}") if x)
    found = len(find())
    return monitor, (f"{found} processes ({sources}, with their children)" if found else
                     f"not measured: no live process from {sources}")


def peer_settings(s: BenchSettings, run_id: str) -> BenchSettings:
    """The settings of side B: the compared endpoint, its keys, its bucket (by default
    ``bench-<run id>-b``, so that comparing an endpoint with itself uses two buckets), no data policy."""
    c = s.compare
    assert c is not None
    return replace(s, endpoint=c.endpoint, access_key=c.access_key, secret_key=c.secret_key, region=c.region,
                   bucket=c.bucket or f"bench-{run_id}-b", policy=None, compare=None)


async def run_comparison(s: BenchSettings, progress: TextIO, rng: random.Random | None = None) -> CompareResult:
    """Run every workload on both endpoints, interleaved, and clean up; raises BenchError if setup fails."""
    rng = rng or random.Random()
    run_id = f"{rng.getrandbits(32):08x}"
    sb = peer_settings(s, run_id)
    monitor_a = cluster_monitor(s)
    monitor_b, cpu_b = peer_monitor(s.compare)  # type: ignore[arg-type]
    cpu_a = (f"{monitor_a.process_count} processes of the cluster in {s.data_dir}" if monitor_a.cpu_available
             else f"not measured ({monitor_a.gateway_unavailable or 'no live cluster process'})")
    payloads: dict[int, Payload] = {}
    specs = plan_phases(s)
    idle: list[float | None] = [None, None]
    rounds: dict[tuple[int, str], list[PhaseResult]] = {(i, side): [] for i in range(len(specs)) for side in "ab"}
    async with open_client(s) as client_a, open_client(sb) as client_b:
        runs = {"a": BenchRun(s, client_a, monitor_a, progress, rng, run_id=run_id, payloads=payloads, tag="A "),
                "b": BenchRun(sb, client_b, monitor_b, progress, rng, run_id=run_id, payloads=payloads, tag="B ")}
        cleanup: dict[str, dict[str, object]] = {"a": {}, "b": {}}
        try:
            for run in runs.values():
                await run.setup()
            runs["a"].say(f"objstore bench --compare: A {s.endpoint} bucket {runs['a'].bucket}, "
                          f"B {sb.endpoint} bucket {runs['b'].bucket}, keys under {runs['a'].prefix}, "
                          f"{s.rounds} rounds A B per workload")
            runs["a"].say(f"  measuring idle CPU for {s.idle_sample_s:g} s...")
            idle = await asyncio.gather(idle_cores(monitor_a, s.idle_sample_s),
                                        idle_cores(monitor_b, s.idle_sample_s))
            for index, rnd, side in interleave(range(len(specs)), s.rounds):
                if side == "a":
                    runs["a"].say(f"  round {rnd + 1}/{s.rounds} of {specs[index].label}")
                rounds[(index, side)].append(await runs[side].run_phase(specs[index]))
        finally:  # also on Ctrl-C and when B's setup failed after A's
            for side, run in runs.items():
                cleanup[side] = await run.cleanup()
                run.say(f"  cleanup {run.s.endpoint}: " + ", ".join(f"{k} {v}" for k, v in cleanup[side].items()))
    ceiling = disk_ceiling(s.disk_limit_mb_s, s.disk_copies)
    workloads = tuple(compare_workload(rounds[(i, "a")], rounds[(i, "b")], ceiling, (idle[0], idle[1]))
                      for i in range(len(specs)))
    notes = [*monitor_a.notes, *monitor_b.notes]
    if ceiling is not None:
        notes.append(f"disk limit {s.disk_limit_mb_s:.0f} MB/s for {s.disk_copies} copies: "
                     f"a PUT's client ceiling is {ceiling:.1f} MB/s")
    return CompareResult(
        a=Endpoint(s.endpoint, runs["a"].bucket, runs["a"].bucket_created, cpu_a, cleanup["a"], idle[0]),
        b=Endpoint(sb.endpoint, runs["b"].bucket, runs["b"].bucket_created, cpu_b, cleanup["b"], idle[1]),
        rounds=s.rounds, workloads=workloads, notes=tuple(dict.fromkeys(notes)))
