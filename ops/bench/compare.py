"""Comparing two S3 endpoints: the interleaved order, the per-workload medians and ratios, the report.

Pure functions and records, no IO: ``interleave`` gives the order in which the runner
measures (for each workload, rounds A B A B ...); ``summarize_side`` and ``compare_workload``
turn the rounds' ``PhaseResult``s into medians; ``CompareResult.to_dict`` is what
``--json`` prints and ``format_compare_table`` what a person reads.

Conventions: a workload's rate is ops/s for objects under 1 MiB and MB/s (10**6 bytes)
otherwise; every figure of a side is the median over its rounds (rate, p50, p99, cluster
CPU-µs per operation), rounds without a figure left out; the ratio is A's median rate over
B's (>1: A is faster; ``median_pair_ratio`` is the median of each round's A/B) and the CPU ratio A's CPU-µs/op over B's (<1: A spends less); the
disk-limit fraction of a PUT workload is its client MB/s over ``disk limit / copies``. A
figure that cannot be computed is None (printed "-"), never 0.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, TypeVar

from ops.bench.results import PhaseResult
from ops.bench.report import error_summary, human_bytes
from ops.cli.output import table

SIDES = ("a", "b")
W = TypeVar("W")
LARGE = 1 << 20


def interleave(workloads: Iterable[W], rounds: int) -> list[tuple[W, int, str]]:
    """(workload, round, side) in the order they run: per workload, A then B, ``rounds`` times."""
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    return [(w, r, side) for w in workloads for r in range(rounds) for side in SIDES]


def median(values: Iterable[float | None]) -> float | None:
    """The median of the known values (the mean of the middle two for an even count); None if none."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is unknown or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def is_large(size: int) -> bool:
    return size >= LARGE


def rate_of(r: PhaseResult) -> float | None:
    """A round's rate in the workload's unit: MB/s for large objects, ops/s for small ones."""
    return r.mb_per_s if is_large(r.object_size) else r.ops_per_s


def cpu_us_per_op(r: PhaseResult, idle_cores: float | None = 0.0) -> float | None:
    """The endpoint's processes' CPU time per successful operation of a round, in µs; with
    ``idle_cores`` (CPU seconds per second they use when no request comes), only what the
    round used above that (None when the idle rate is unknown)."""
    if r.cluster_cpu_s is None or r.ops <= 0 or idle_cores is None:
        return None
    return (r.cluster_cpu_s - idle_cores * r.elapsed_s) * 1e6 / r.ops


@dataclass(frozen=True)
class SideSummary:
    """One endpoint's rounds of one workload, as medians."""

    rates: tuple[float | None, ...]
    rate: float | None
    p50_s: float | None
    p99_s: float | None
    cpu_us_per_op: float | None
    ops: int
    errors: int
    error_kinds: Mapping[str, int] = field(default_factory=dict)
    failed_checks: int = 0
    cpu_us_per_op_above_idle: float | None = None

    def to_dict(self, digits: int) -> dict:
        return {
            "median": _round(self.rate, digits), "rounds": [_round(v, digits) for v in self.rates],
            "p50_ms": _round(None if self.p50_s is None else self.p50_s * 1000, 3),
            "p99_ms": _round(None if self.p99_s is None else self.p99_s * 1000, 3),
            "cpu_us_per_op": _round(self.cpu_us_per_op, 1),
            "cpu_us_per_op_above_idle": _round(self.cpu_us_per_op_above_idle, 1), "ops": self.ops, "errors": self.errors,
            "error_kinds": dict(self.error_kinds), "failed_checks": self.failed_checks,
        }


def summarize_side(rounds: Sequence[PhaseResult], idle_cores: float | None = None) -> SideSummary:
    """The medians of one endpoint's rounds of one workload (``idle_cores``: see ``cpu_us_per_op``)."""
    kinds: dict[str, int] = {}
    for r in rounds:
        for k, v in r.error_kinds.items():
            kinds[k] = kinds.get(k, 0) + v
    rates = tuple(rate_of(r) for r in rounds)
    return SideSummary(
        rates=rates, rate=median(rates), p50_s=median(r.latency.p50 for r in rounds),
        p99_s=median(r.latency.p99 for r in rounds), cpu_us_per_op=median(cpu_us_per_op(r) for r in rounds),
        ops=sum(r.ops for r in rounds), errors=sum(r.errors for r in rounds), error_kinds=kinds,
        cpu_us_per_op_above_idle=median(cpu_us_per_op(r, idle_cores) for r in rounds),
        failed_checks=sum(r.failed_checks for r in rounds),
    )


@dataclass(frozen=True)
class WorkloadComparison:
    name: str
    op: str
    concurrency: int
    object_size: int
    a: SideSummary
    b: SideSummary
    disk_ceiling_mb_s: float | None = None  # client MB/s a PUT can reach at the disk's limit

    @property
    def label(self) -> str:
        return f"{self.name} c={self.concurrency}"

    @property
    def unit(self) -> str:
        return "MB/s" if is_large(self.object_size) else "ops/s"

    @property
    def ratio(self) -> float | None:
        return ratio(self.a.rate, self.b.rate)

    @property
    def pair_ratios(self) -> tuple[float | None, ...]:
        """A/B of each round's pair (A's round i over B's round i): drift between rounds cancels."""
        return tuple(ratio(a, b) for a, b in zip(self.a.rates, self.b.rates))

    @property
    def cpu_ratio(self) -> float | None:
        return ratio(self.a.cpu_us_per_op, self.b.cpu_us_per_op)

    def disk_fraction(self, side: SideSummary) -> float | None:
        """The side's median MB/s over the disk ceiling (PUTs of large objects only)."""
        if self.disk_ceiling_mb_s is None or self.op != "put" or not is_large(self.object_size):
            return None
        return ratio(side.rate, self.disk_ceiling_mb_s)

    def to_dict(self) -> dict:
        digits = 2 if is_large(self.object_size) else 1
        return {
            "workload": self.name, "op": self.op, "concurrency": self.concurrency,
            "object_size": self.object_size, "unit": self.unit,
            "a": self.a.to_dict(digits), "b": self.b.to_dict(digits),
            "ratio": _round(self.ratio, 3), "cpu_ratio": _round(self.cpu_ratio, 3),
            "pair_ratios": [_round(r, 3) for r in self.pair_ratios],
            "median_pair_ratio": _round(median(self.pair_ratios), 3),
            "disk_limit_fraction": None if self.disk_fraction(self.a) is None else {
                "a": _round(self.disk_fraction(self.a), 3), "b": _round(self.disk_fraction(self.b), 3),
                "ceiling_mb_s": _round(self.disk_ceiling_mb_s, 1)},
        }


def disk_ceiling(disk_limit_mb_s: float | None, copies: int) -> float | None:
    """Client MB/s that writes ``copies`` copies at ``disk_limit_mb_s`` in total."""
    return None if disk_limit_mb_s is None else disk_limit_mb_s / max(1, copies)


def compare_workload(a_rounds: Sequence[PhaseResult], b_rounds: Sequence[PhaseResult],
                     disk_ceiling_mb_s: float | None = None,
                     idle_cores: tuple[float | None, float | None] = (None, None)) -> WorkloadComparison:
    """One workload from both endpoints' rounds (at least one round on each side)."""
    first = (a_rounds or b_rounds)[0]
    return WorkloadComparison(first.name, first.op, first.concurrency, first.object_size,
                              summarize_side(a_rounds, idle_cores[0]), summarize_side(b_rounds, idle_cores[1]),
                              disk_ceiling_mb_s)


@dataclass(frozen=True)
class Endpoint:
    """One side of a comparison, as reported."""

    endpoint: str
    bucket: str
    bucket_created: bool
    cpu: str  # where its CPU figures come from, or why there are none
    cleanup: Mapping[str, object] = field(default_factory=dict)
    idle_cores: float | None = None  # CPU seconds per second its processes used with no load

    def to_dict(self) -> dict:
        return {"endpoint": self.endpoint, "bucket": self.bucket, "bucket_created": self.bucket_created,
                "cpu": self.cpu, "idle_cpu_cores": _round(self.idle_cores, 4), "cleanup": dict(self.cleanup)}


@dataclass(frozen=True)
class CompareResult:
    a: Endpoint
    b: Endpoint
    rounds: int
    workloads: tuple[WorkloadComparison, ...]
    notes: tuple[str, ...] = ()

    @property
    def errors(self) -> int:
        return sum(w.a.errors + w.b.errors for w in self.workloads)

    @property
    def failed_checks(self) -> int:
        return sum(w.a.failed_checks + w.b.failed_checks for w in self.workloads)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.failed_checks == 0

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "rounds": self.rounds, "order": "ABAB",
                "ok": self.ok, "errors": self.errors, "failed_checks": self.failed_checks,
                "workloads": [w.to_dict() for w in self.workloads], "notes": list(self.notes)}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _cpu_cell(s: SideSummary) -> str:
    if s.cpu_us_per_op is None:
        return "-"
    return f"{s.cpu_us_per_op:.0f} ({_num(s.cpu_us_per_op_above_idle, '{:.0f}')})"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


COLUMNS = ("workload", "size", "A", "B", "A/B", "p99 A ms", "p99 B ms", "CPU-µs/op A", "CPU-µs/op B",
           "disk limit A/B", "errors A/B")


def compare_rows(result: CompareResult) -> list[tuple[str, ...]]:
    rows = []
    for w in result.workloads:
        fmt = "{:.1f} " + w.unit
        da, db = w.disk_fraction(w.a), w.disk_fraction(w.b)
        rows.append((
            w.label, human_bytes(w.object_size), _num(w.a.rate, fmt), _num(w.b.rate, fmt),
            _num(w.ratio, "{:.2f}×"), _ms(w.a.p99_s), _ms(w.b.p99_s),
            _cpu_cell(w.a), _cpu_cell(w.b),
            "-" if da is None else f"{da * 100:.0f}% / {_num(db and db * 100, '{:.0f}%')}",
            f"{w.a.errors} / {w.b.errors}",
        ))
    return rows


def format_compare_table(result: CompareResult) -> str:
    """The readable comparison printed at the end of a ``--compare`` run."""
    lines = [f"{name}: {e.endpoint} (bucket {e.bucket}; CPU: {e.cpu}; idle "
             f"{_num(e.idle_cores and e.idle_cores * 100, '{:.1f}% of a core')})"
             for name, e in (("A", result.a), ("B", result.b))]
    lines += [f"medians of {result.rounds} interleaved round(s) per workload (A B A B ...), same keys, "
             "same bytes, same concurrency", "",
             table([COLUMNS, *compare_rows(result)], right=set(range(1, len(COLUMNS))), rule=True), "",
             "A/B: A's median rate over B's (>1: A faster). CPU-µs/op: CPU time of every process of that "
             "endpoint per successful operation (median of rounds), in brackets what is left after taking off "
             "what its processes use when idle (measured before the first workload). disk limit: client MB/s over "
             "(parallel fsynced streams' MB/s / copies)."]
    for w in result.workloads:
        for side, s in (("A", w.a), ("B", w.b)):
            if s.errors:
                lines.append(f"ERRORS in {w.label} on {side}: {s.errors} ({error_summary(s.error_kinds)})")
            if s.failed_checks:
                lines.append(f"FAILED CHECKS in {w.label} on {side}: {s.failed_checks}")
    for side in (result.a, result.b):
        if side.cleanup:
            lines.append(f"cleanup {side.endpoint}: " + ", ".join(f"{k} {v}" for k, v in side.cleanup.items()))
    lines.extend(f"note: {n}" for n in result.notes)
    lines.append("result: " + ("no errors" if result.ok else
                               f"{result.errors} ERRORS, {result.failed_checks} failed checks"))
    return "\n".join(lines)
