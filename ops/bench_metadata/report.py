"""The metadata benchmark's output: a table for people, JSON for programs. Pure."""
from __future__ import annotations

import json
from typing import Any, Sequence

from ops.bench_metadata.figures import PhaseResult

HEADER = ("SYSTEM", "OP", "CLIENTS", "OPS/S", "P50 MS", "P99 MS", "PER FSYNC", "CLIENT CPU", "SERVER CPU", "ERRORS")


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def phase_row(r: PhaseResult) -> tuple[str, ...]:
    return (
        r.system, r.op, str(r.concurrency), _f(r.rate, ",.0f"),
        _f(None if r.p50_s is None else r.p50_s * 1000, ".2f"),
        _f(None if r.p99_s is None else r.p99_s * 1000, ".2f"),
        _f(r.per_fsync, ".1f"), _f(r.client_cpu, ".2f"), _f(r.server_cpu, ".2f"), str(r.errors),
    )


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned text columns, numbers right-aligned, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def format_table(phases: Sequence[PhaseResult], notes: Sequence[str] = ()) -> str:
    lines = []
    if phases:
        lines.append(table([HEADER, *(phase_row(p) for p in phases)]))
        lines.append("")
        lines.append("PER FSYNC: commands (etcd: committed proposals) made durable per log fsync at the leader "
                     "during the phase. CPU: cores busy (CPU s per wall s); client = this benchmark process, "
                     "server = the local server processes summed.")
    for n in notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def format_json(phases: Sequence[PhaseResult], notes: Sequence[str] = (), settings: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"settings": settings or {}, "phases": [p.to_dict() for p in phases], "notes": list(notes)}
    if extra:
        doc.update(extra)
    return json.dumps(doc, indent=2)
