"""The benchmark's results as records: one ``PhaseResult`` per phase, one ``RunResult`` per run.

Built by pure functions from what a phase recorded (latencies, counts, errors, checks,
elapsed time, process usage); ``to_dict`` gives the machine-readable form printed by
``--json``. Invariants: ``ops`` counts successes only and ``errors`` every failure, so
ops + errors is the number of requests completed; rates and CPU costs are computed from
successes only and are None when there were none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ops.bench.loadgen import PhaseSpec
from ops.bench.monitor import PhaseUsage
from ops.bench.stats import (LatencySummary, RssSummary, cpu_per_1000_ops, cpu_per_gb, mb_per_s, merge_rss,
                             summarize_latencies, throughput)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class PhaseResult:
    name: str
    op: str
    concurrency: int
    object_size: int
    elapsed_s: float
    ops: int
    errors: int
    error_kinds: Mapping[str, int]
    nbytes: int
    latency: LatencySummary
    ops_per_s: float | None
    mb_per_s: float | None
    gateway_rss: RssSummary | None = None
    cluster_cpu_s: float | None = None
    cpu_by_role: Mapping[str, float] = field(default_factory=dict)
    client_cpu_s: float | None = None
    checks: tuple[dict, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} c={self.concurrency}"

    @property
    def cpu_per_1000_ops(self) -> float | None:
        return cpu_per_1000_ops(self.cluster_cpu_s, self.ops)

    @property
    def cpu_per_gb(self) -> float | None:
        return cpu_per_gb(self.cluster_cpu_s, self.nbytes)

    @property
    def client_cpu_share(self) -> float | None:
        """The benchmark's own CPU time as a fraction of the phase's wall time (1.0 = one core)."""
        if self.client_cpu_s is None or self.elapsed_s <= 0:
            return None
        return self.client_cpu_s / self.elapsed_s

    @property
    def failed_checks(self) -> int:
        return sum(1 for c in self.checks if not c.get("ok"))

    def to_dict(self) -> dict:
        return {
            "phase": self.name, "op": self.op, "concurrency": self.concurrency, "object_size": self.object_size,
            "elapsed_s": _round(self.elapsed_s), "ops": self.ops, "errors": self.errors,
            "error_kinds": dict(self.error_kinds), "bytes": self.nbytes,
            "ops_per_s": _round(self.ops_per_s, 1), "mb_per_s": _round(self.mb_per_s, 2),
            "latency_ms": self.latency.to_ms(),
            "gateway_rss": None if self.gateway_rss is None else self.gateway_rss.to_dict(),
            "cpu": {
                "cluster_s": _round(self.cluster_cpu_s), "by_role": {k: _round(v) for k, v in self.cpu_by_role.items()},
                "per_1000_ops": _round(self.cpu_per_1000_ops), "per_gb": _round(self.cpu_per_gb),
                "us_per_op": _round(None if self.cpu_per_1000_ops is None else self.cpu_per_1000_ops * 1000, 1),
                "client_s": _round(self.client_cpu_s),
            },
            "checks": list(self.checks), "notes": list(self.notes),
        }


def build_phase_result(spec: PhaseSpec, latencies: Iterable[float], ops: int, nbytes: int,
                       error_kinds: Mapping[str, int], elapsed_s: float, usage: PhaseUsage | None = None,
                       checks: Iterable[dict] = ()) -> PhaseResult:
    """The result of one phase from what it recorded."""
    u = usage or PhaseUsage(None, None)
    return PhaseResult(
        name=spec.name, op=spec.op, concurrency=spec.concurrency, object_size=spec.size, elapsed_s=elapsed_s,
        ops=ops, errors=sum(error_kinds.values()), error_kinds=dict(error_kinds), nbytes=nbytes,
        latency=summarize_latencies(latencies), ops_per_s=throughput(ops, elapsed_s),
        mb_per_s=mb_per_s(nbytes, elapsed_s), gateway_rss=u.gateway_rss, cluster_cpu_s=u.cluster_cpu_s,
        cpu_by_role=dict(u.cpu_by_role), client_cpu_s=u.client_cpu_s, checks=tuple(checks), notes=u.notes,
    )


@dataclass(frozen=True)
class RunResult:
    endpoint: str
    bucket: str
    bucket_created: bool
    phases: tuple[PhaseResult, ...]
    monitor_note: str | None = None
    cleanup: Mapping[str, object] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def gateway_rss(self) -> RssSummary | None:
        return merge_rss(p.gateway_rss for p in self.phases)

    @property
    def errors(self) -> int:
        return sum(p.errors for p in self.phases)

    @property
    def failed_checks(self) -> int:
        return sum(p.failed_checks for p in self.phases)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.failed_checks == 0

    def to_dict(self) -> dict:
        rss = self.gateway_rss
        return {
            "endpoint": self.endpoint, "bucket": self.bucket, "bucket_created": self.bucket_created,
            "ok": self.ok, "errors": self.errors, "failed_checks": self.failed_checks,
            "gateway_rss": rss.to_dict() if rss else {"status": "n/a", "reason": self.monitor_note or "no samples"},
            "phases": [p.to_dict() for p in self.phases],
            "cleanup": dict(self.cleanup), "notes": list(self.notes),
        }
