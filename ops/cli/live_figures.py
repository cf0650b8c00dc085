"""Request rates and latencies from two scrapes of the gateways' ``/metrics`` (for ``objstore top``).

A :class:`Scrape` is the samples of the request families at one moment, summed over every
gateway: ``objstore_requests_total`` (by op and status), the ``objstore_request_seconds``
histogram (by op), body bytes in/out and S3 requests in flight (health checks and scrapes,
this one included, left out). :func:`figures` turns two
scrapes into per-second rates and p50/p99 latencies over the time between them, the way
PromQL's ``rate`` and ``histogram_quantile`` would (linear interpolation inside a bucket).

Pure: parsing takes the exposition text, :func:`figures` takes both scrapes with their times.
A counter that went down (a gateway restarted) counts from zero, as ``rate`` does.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROLE = "gateway"
NOT_S3 = frozenset({"health", "health/live", "health/ready", "metrics"})  # the gateway's ops for these paths


@dataclass(frozen=True)
class Scrape:
    """Request-family samples of every gateway at ``at`` (seconds, any monotonic clock)."""

    at: float
    requests: dict[tuple[str, str], float] = field(default_factory=dict)  # (op, status) -> count
    buckets: dict[tuple[str, float], float] = field(default_factory=dict)  # (op, le) -> cumulative count
    bytes_in: float = 0.0
    bytes_out: float = 0.0
    in_flight: float = 0.0


def parse(texts: list[str], at: float) -> Scrape:
    """The request families of each gateway's ``/metrics`` text, summed."""
    requests: dict[tuple[str, str], float] = defaultdict(float)
    buckets: dict[tuple[str, float], float] = defaultdict(float)
    totals = {"in": 0.0, "out": 0.0, "flight": 0.0}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.labels.get("role", ROLE) != ROLE:
                    continue
                if s.labels.get("op") in NOT_S3:
                    continue
                if s.name == "objstore_requests_total":
                    requests[(s.labels["op"], s.labels["status"])] += s.value
                elif s.name == "objstore_request_seconds_bucket":
                    buckets[(s.labels["op"], float(s.labels["le"]))] += s.value
                elif s.name == "objstore_bytes_in_total":
                    totals["in"] += s.value
                elif s.name == "objstore_bytes_out_total":
                    totals["out"] += s.value
                elif s.name == "objstore_s3_requests_in_flight":
                    totals["flight"] += max(s.value - 1, 0)  # less the scrape itself
    return Scrape(at, dict(requests), dict(buckets), totals["in"], totals["out"], totals["flight"])


def _delta(new: float, old: float) -> float:
    return new - old if new >= old else new


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram's cumulative ``(le, count)`` pairs (sorted by ``le``);
    None with no observations. Above the last finite bucket: that bucket's bound."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if math.isinf(le):
                return lower
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def figures(prev: Scrape, cur: Scrape) -> dict[str, Any]:
    """Rates per second between two scrapes and latency quantiles of the requests in between:
    ``requests_per_s``, ``errors_per_s`` (status 5xx), ``p50_ms``/``p99_ms``,
    ``bytes_in_per_s``/``bytes_out_per_s``, ``in_flight`` and ``ops`` (per operation:
    ``requests_per_s``, ``p50_ms``, ``p99_ms``, busiest first)."""
    span = cur.at - prev.at
    if span <= 0:
        return {}
    per_op: dict[str, float] = defaultdict(float)
    errors = 0.0
    for key, value in cur.requests.items():
        d = _delta(value, prev.requests.get(key, 0.0))
        per_op[key[0]] += d
        if key[1].startswith("5"):
            errors += d
    hist: dict[str, dict[float, float]] = defaultdict(dict)
    for (op, le), value in cur.buckets.items():
        hist[op][le] = _delta(value, prev.buckets.get((op, le), 0.0))
    merged: dict[float, float] = defaultdict(float)
    for by_le in hist.values():
        for le, v in by_le.items():
            merged[le] += v

    def ms(q: float, by_le: dict[float, float]) -> float | None:
        v = quantile(q, sorted(by_le.items()))
        return None if v is None else round(1000 * v, 3)

    ops = {op: {"requests_per_s": round(n / span, 3), "p50_ms": ms(0.5, hist.get(op, {})),
                "p99_ms": ms(0.99, hist.get(op, {}))}
           for op, n in sorted(per_op.items(), key=lambda kv: -kv[1]) if n > 0}
    return {
        "interval_s": round(span, 3),
        "requests_per_s": round(sum(per_op.values()) / span, 3),
        "errors_per_s": round(errors / span, 3),
        "p50_ms": ms(0.5, merged), "p99_ms": ms(0.99, merged),
        "bytes_in_per_s": round(_delta(cur.bytes_in, prev.bytes_in) / span, 1),
        "bytes_out_per_s": round(_delta(cur.bytes_out, prev.bytes_out) / span, 1),
        "in_flight": cur.in_flight,
        "ops": ops,
    }
