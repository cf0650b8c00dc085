"""The metadata benchmark's pure figures: phase results, batching per fsync, leader choice.

No IO and no clock: every function takes the numbers a run collected and returns the
figures the report prints, so each can be checked by hand in unit tests.

Conventions (shared with :mod:`ops.bench.stats`): latencies are seconds, percentiles
interpolate linearly between the nearest ranks, throughput counts successful operations
over the phase's wall-clock time, and a figure that cannot be computed is ``None``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ops.bench.stats import percentile, throughput


class TopologyError(Exception):
    """The nodes' own status reports do not describe one group with one leader."""


class NoLeader(TopologyError):
    """No node reports itself leader (yet: a group may be electing one)."""


@dataclass(frozen=True)
class PhaseResult:
    """One phase of one system: ``op`` ("write"/"read") at ``concurrency`` clients."""

    system: str  # e.g. "objstore (1 node)", "etcd (3 nodes)"
    op: str
    concurrency: int
    ops: int
    errors: int
    elapsed_s: float
    p50_s: float | None
    p99_s: float | None
    per_fsync: float | None = None  # commands made durable per fsync at the leader
    client_cpu: float | None = None  # the benchmark process's CPU, in cores
    server_cpu: float | None = None  # the servers' CPU, summed, in cores
    first_error: str | None = None

    @property
    def rate(self) -> float | None:
        return throughput(self.ops, self.elapsed_s) if self.elapsed_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 3)

        def r(v: float | None, nd: int = 2) -> float | None:
            return None if v is None else round(v, nd)

        return {
            "system": self.system, "op": self.op, "concurrency": self.concurrency, "ops": self.ops,
            "errors": self.errors, "elapsed_s": r(self.elapsed_s, 3), "ops_per_s": r(self.rate, 1),
            "p50_ms": ms(self.p50_s), "p99_ms": ms(self.p99_s), "per_fsync": r(self.per_fsync),
            "client_cpu_cores": r(self.client_cpu), "server_cpu_cores": r(self.server_cpu),
            "first_error": self.first_error,
        }


def phase_result(system: str, op: str, concurrency: int, latencies: Iterable[float], errors: int,
                 elapsed_s: float, *, per_fsync: float | None = None, client_cpu_s: float | None = None,
                 server_cpu_s: float | None = None, first_error: str | None = None) -> PhaseResult:
    """Summarize one phase; CPU seconds become cores (CPU seconds per wall second)."""
    ordered = sorted(latencies)

    def cores(cpu_s: float | None) -> float | None:
        return None if cpu_s is None or elapsed_s <= 0 else cpu_s / elapsed_s

    return PhaseResult(
        system=system, op=op, concurrency=concurrency, ops=len(ordered), errors=errors, elapsed_s=elapsed_s,
        p50_s=percentile(ordered, 50), p99_s=percentile(ordered, 99), per_fsync=per_fsync,
        client_cpu=cores(client_cpu_s), server_cpu=cores(server_cpu_s), first_error=first_error,
    )


def per_fsync(entries_before: int, entries_after: int, fsyncs_before: int, fsyncs_after: int) -> float | None:
    """Entries made durable per fsync between two readings; None when no fsync happened.

    Raises ValueError when a counter went backwards (a node restarted in between).
    """
    entries, fsyncs = entries_after - entries_before, fsyncs_after - fsyncs_before
    if entries < 0 or fsyncs < 0:
        raise ValueError("a log counter went backwards between the two readings (did the node restart?)")
    return None if fsyncs == 0 else entries / fsyncs


def pick_leader(statuses: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The address whose node reports itself leader, among ``address -> status`` (None: down).

    Raises TopologyError when no node, or more than one node in the same term, reports
    itself leader: two single-node services are not one replicated group.
    """
    leaders = [(a, s) for a, s in statuses.items() if s is not None and s.get("role") == "leader"]
    if not leaders:
        raise NoLeader("no metadata node reports itself leader")
    if len(leaders) > 1:
        top = max(int(s.get("term", 0)) for _, s in leaders)
        leaders = [(a, s) for a, s in leaders if int(s.get("term", 0)) == top]
        if len(leaders) > 1:
            names = ", ".join(f"{a} ({s.get('node_id', '?')})" for a, s in leaders)
            raise TopologyError(f"several metadata nodes report themselves leader: {names}; "
                                "they are independent single-node services, not one replicated group")
    return leaders[0][0]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def prometheus_values(text: str, names: Sequence[str]) -> dict[str, float]:
    """The values of unlabelled-or-summed samples named ``names`` in a Prometheus text page.

    Samples of one name with different labels are added up; absent names are left out.
    """
    wanted = set(names)
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m and m.group(1) in wanted:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                continue
    return out

