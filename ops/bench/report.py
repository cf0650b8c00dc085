"""How the benchmark reads to a person: progress lines, the final table, the error summary.

Pure string formatting of ``PhaseResult``/``RunResult`` (tables by :func:`ops.cli.output.table`,
painted only inside ``ops.cli.output.colour``); the caller decides where the text goes.
Invariants: a phase with errors or failed checks says so in words on its progress line
and in the summary, with every error kind and its count; a figure that is unknown prints
as "-" (or "n/a" with the reason for the gateway's memory), never as 0.
"""
from __future__ import annotations

import json

from ops.bench.results import PhaseResult, RunResult
from ops.cli.output import paint, table


def human_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB'; None -> '-'."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" or value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _num(value: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000.0
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 1000 else f"{ms:.0f}"


def error_summary(kinds: dict[str, int] | object) -> str:
    """'503 SlowDown x10, Timeout x2', most frequent first."""
    items = sorted(dict(kinds).items(), key=lambda kv: (-kv[1], kv[0]))  # type: ignore[call-overload]
    return ", ".join(f"{k} x{v}" for k, v in items)


def progress_line(r: PhaseResult) -> str:
    """The one line printed as a phase finishes."""
    large = r.object_size >= 1 << 20
    rate = f"{_num(r.mb_per_s)} MB/s" if large else f"{_num(r.ops_per_s)} ops/s"
    errors = "no errors" if r.errors == 0 else f"{r.errors} ERRORS ({error_summary(r.error_kinds)})"
    if r.failed_checks:
        errors += f", {r.failed_checks} FAILED CHECK(S)"
    return (f"  {r.label:<16} {r.elapsed_s:6.1f}s  {r.ops:>7} ok  {rate:>14}  "
            f"p50 {_ms(r.latency.p50)} ms  p99 {_ms(r.latency.p99)} ms  {errors}")


def _cpu_cell(r: PhaseResult) -> str:
    if r.object_size >= 1 << 20:
        return "-" if r.cpu_per_gb is None else f"{r.cpu_per_gb:.2f}/GB"
    return "-" if r.cpu_per_1000_ops is None else f"{r.cpu_per_1000_ops:.2f}/1k"


def _rss_cell(r: PhaseResult) -> str:
    if r.gateway_rss is None:
        return "n/a"
    return f"{human_bytes(r.gateway_rss.peak)} (+{human_bytes(r.gateway_rss.growth)})"


COLUMNS = ("phase", "conc", "size", "ok", "errors", "ops/s", "MB/s", "p50 ms", "p99 ms",
           "cluster cpu-s", "client cpu", "gateway RSS peak")


def table_rows(run: RunResult) -> list[tuple[str, ...]]:
    rows = []
    for r in run.phases:
        share = r.client_cpu_share
        rows.append((
            r.name, str(r.concurrency), human_bytes(r.object_size), str(r.ops),
            str(r.errors) if r.errors == 0 else paint(f"{r.errors} !", "red"),
            _num(r.ops_per_s), _num(r.mb_per_s, "{:.2f}"), _ms(r.latency.p50), _ms(r.latency.p99),
            _cpu_cell(r), "-" if share is None else f"{share * 100:.0f}%", _rss_cell(r),
        ))
    return rows


def format_table(run: RunResult) -> str:
    """The readable report printed at the end of a run."""
    rows = [COLUMNS, *table_rows(run)]
    owned = " (created for this run, deleted after)" if run.bucket_created else ""
    lines = [f"objstore bench: {run.endpoint}, bucket {run.bucket}{owned}", "",
             table(rows, right=set(range(1, len(COLUMNS) - 1)), rule=True), ""]
    lines.append("cluster cpu-s: CPU seconds of all cluster processes per 1000 successful ops (small) or per GB "
                 "(large); client cpu: the benchmark's own CPU as a share of one core.")
    rss = run.gateway_rss
    if rss is None:
        lines.append(f"gateway RSS: n/a ({run.monitor_note or 'no samples'})")
    else:
        lines.append(f"gateway RSS: start {human_bytes(rss.start)}, peak {human_bytes(rss.peak)} "
                     f"(+{human_bytes(rss.growth)}), end {human_bytes(rss.end)}")
    for r in run.phases:
        if r.errors:
            lines.append(f"ERRORS in {r.label}: {r.errors} ({error_summary(r.error_kinds)})")
        for c in r.checks:
            verdict = "ok" if c.get("ok") else "FAILED"
            detail = f" ({c['note']})" if c.get("note") else ""
            lines.append(f"check {r.label}: {c['op']} {c['key']} {verdict}{detail}")
        for note in r.notes:
            lines.append(f"note {r.label}: {note}")
    for note in run.notes:
        lines.append(f"note: {note}")
    lines.append("result: " + ("no errors" if run.ok else
                               f"{run.errors} ERRORS, {run.failed_checks} failed checks"))
    return "\n".join(lines)


def format_json(run: RunResult) -> str:
    return json.dumps(run.to_dict(), indent=2, sort_keys=False)
