"""The benchmark's arithmetic: percentiles, throughput, CPU cost, memory peaks.

Pure functions and records only, no IO and no clock, so every figure the benchmark
prints can be checked by hand in unit tests.

Conventions: latencies are seconds (floats); percentiles use linear interpolation
between the two nearest ranks (numpy's default "linear" method), so the 0th percentile is
the minimum and the 100th the maximum; throughput is counted over the wall-clock time of
the whole phase, from its start until the last in-flight request finished; MB is 10**6
bytes. A figure that cannot be computed (no samples, no operations) is ``None``, never 0.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

MB = 1_000_000


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0 <= q <= 100) of already-sorted values; None when there are none.

    Raises ValueError if q is outside [0, 100] or not a number.
    """
    if math.isnan(q) or not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], not {q}")
    n = len(sorted_values)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_values[0])
    rank = (n - 1) * q / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, n - 1)
    frac = rank - lo
    low, high = float(sorted_values[lo]), float(sorted_values[hi])
    return low + (high - low) * frac


@dataclass(frozen=True)
class LatencySummary:
    """Latency of the successful operations of one phase, in seconds."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    min: float | None
    max: float | None

    def to_ms(self) -> dict[str, float | int | None]:
        """The summary with every latency in milliseconds (rounded to microseconds)."""
        out: dict[str, float | int | None] = {"count": self.count}
        for name, value in asdict(self).items():
            if name != "count":
                out[name] = None if value is None else round(value * 1000.0, 3)
        return out


def summarize_latencies(values: Iterable[float]) -> LatencySummary:
    """Count, mean, p50/p90/p99, min and max of the given latencies (any order)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return LatencySummary(0, None, None, None, None, None, None)
    return LatencySummary(
        count=n,
        mean=math.fsum(ordered) / n,
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        min=float(ordered[0]),
        max=float(ordered[-1]),
    )


def throughput(count: float, elapsed_s: float) -> float | None:
    """``count`` per second over ``elapsed_s``; None when nothing was counted or no time passed.

    Raises ValueError for a negative count or elapsed time.
    """
    if count < 0 or elapsed_s < 0:
        raise ValueError(f"count and elapsed time must not be negative ({count}, {elapsed_s})")
    if count == 0 or elapsed_s == 0:
        return None
    return count / elapsed_s


def mb_per_s(nbytes: int, elapsed_s: float) -> float | None:
    """Decimal megabytes (10**6 bytes) per second, or None as for ``throughput``."""
    rate = throughput(nbytes, elapsed_s)
    return None if rate is None else rate / MB


def cpu_per_1000_ops(cpu_s: float | None, ops: int) -> float | None:
    """CPU seconds spent per thousand successful operations; None without ops or CPU figures."""
    if cpu_s is None or ops <= 0:
        return None
    return cpu_s * 1000.0 / ops


def cpu_per_gb(cpu_s: float | None, nbytes: int) -> float | None:
    """CPU seconds spent per decimal gigabyte moved; None without bytes or CPU figures."""
    if cpu_s is None or nbytes <= 0:
        return None
    return cpu_s * 1e9 / nbytes


@dataclass(frozen=True)
class RssSummary:
    """Resident memory of one process across a span of samples, in bytes."""

    start: int
    peak: int
    end: int

    @property
    def growth(self) -> int:
        """How far the peak rose above the first sample (0 if it never did)."""
        return max(0, self.peak - self.start)

    def to_dict(self) -> dict[str, int]:
        return {"start": self.start, "peak": self.peak, "end": self.end, "growth": self.growth}


def summarize_rss(samples: Sequence[int]) -> RssSummary | None:
    """Start, peak and end of a series of RSS samples in time order; None if there are none."""
    if not samples:
        return None
    return RssSummary(start=int(samples[0]), peak=int(max(samples)), end=int(samples[-1]))


def merge_rss(spans: Iterable[RssSummary | None]) -> RssSummary | None:
    """The whole run from its phases in order: the first start, the highest peak, the last end."""
    known = [s for s in spans if s is not None]
    if not known:
        return None
    return RssSummary(start=known[0].start, peak=max(s.peak for s in known), end=known[-1].end)
