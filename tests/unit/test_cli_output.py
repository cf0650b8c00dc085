"""The admin commands' presentation (ops.cli.output): tables, colour only on a terminal,
progress bars, and the live view's figures and screen (ops.cli.live_figures, ops.cli.top)."""
from __future__ import annotations

import argparse
import io
import json

import pytest

from ops.cli import live_figures
from ops.cli.output import (ProgressBar, RateMeter, bar_line, colour, count_unit, emit, eta_text, paint, state,
                            strip_ansi, table, watch_until)
from ops.cli.top import draw, render


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_table_aligns_columns_and_right_aligns_numbers():
    text = table([("NODE", "STATE", "BLOBS"), ("s1", "up", "7"), ("s10", "down", "1234")], right={2})
    assert text.splitlines() == ["NODE  STATE  BLOBS", "s1    up         7", "s10   down    1234"]
    assert table([("A", "B"), ("xx", "y")], rule=True).splitlines()[1] == "--  -"


def test_painted_cells_stay_aligned_and_colour_is_off_unless_asked():
    assert paint("down", "red") == "down" and state("down") == "down"
    with colour(True):
        assert paint("down", "red") == "\x1b[31mdown\x1b[0m"
        assert state("down (unreachable)").startswith("\x1b[31m") and state("up").startswith("\x1b[32m")
        coloured = table([("NODE", "STATE", "X"), ("s1", state("up"), "a"), ("s2", state("unreachable"), "b")])
    assert "\x1b[1mNODE" in coloured  # bold header
    plain = table([("NODE", "STATE", "X"), ("s1", "up", "a"), ("s2", "unreachable", "b")])
    assert strip_ansi(coloured) == plain


def test_emit_colours_a_terminal_only_and_json_is_plain(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    render = lambda r: table([("STATE",), (state(r["state"]),)])  # noqa: E731
    tty, pipe, js = Tty(), io.StringIO(), Tty()
    emit(argparse.Namespace(json=False), {"state": "down"}, render, out=tty)
    emit(argparse.Namespace(json=False), {"state": "down"}, render, out=pipe)
    emit(argparse.Namespace(json=True), {"state": "down"}, render, out=js)
    assert "\x1b[31mdown" in tty.getvalue()
    assert "\x1b" not in pipe.getvalue() and pipe.getvalue() == "STATE\ndown\n"
    assert json.loads(js.getvalue()) == {"state": "down"}
    monkeypatch.setenv("NO_COLOR", "1")
    quiet = Tty()
    emit(argparse.Namespace(json=False), {"state": "down"}, render, out=quiet)
    assert "\x1b" not in quiet.getvalue()


def test_bar_line_shows_share_rate_and_eta():
    line = bar_line(25, 100, 5.0, unit=count_unit, label="repair", extra="3 left", width=10)
    assert line == "repair  [##........]  25.0%  25 of 100  5/s  ETA 0m15s  3 left"
    assert bar_line(0, None, None, unit=count_unit) == "0  -/s  ETA -"
    timed = bar_line(40, None, 8.0, unit=count_unit, fraction=0.5, eta=5.0, width=4)
    assert timed == "[##..]  50.0%  40  8/s  ETA 0m05s"
    assert (eta_text(3725), eta_text(65), eta_text(None)) == ("1h02m", "1m05s", "-")


def test_rate_meter_uses_the_recent_window():
    m = RateMeter(window=10.0, min_span=0.5)
    assert m.add(0.0, 0) is None
    assert m.add(1.0, 100) == 100.0
    for t in range(2, 30):
        m.add(float(t), 100 + (t - 1) * 10)  # slows to 10/s
    assert m.add(30.0, 100 + 29 * 10) == pytest.approx(10.0, rel=0.2)


def test_progress_bar_draws_on_a_terminal_only_and_erases_its_line():
    clock = Clock()
    tty = Tty()
    with ProgressBar(tty, label="scrub", clock=clock, min_interval=1.0) as bar:
        bar.update(10, 100, rate=1.0)
        clock.now += 0.5
        bar.update(20, 100, rate=1.0)  # too soon: not redrawn
        clock.now += 1.0
        bar.update(30, 100)  # measured rate: 20 B over 1.5 s
    out = tty.getvalue()
    assert out.count("\r\x1b[K") == 3 and out.endswith("\r\x1b[K")
    assert "10 B of 100 B" in out and "20 B of" not in out and "30 B of 100 B" in out and "13 B/s" in out
    pipe = io.StringIO()
    with ProgressBar(pipe, clock=clock) as bar:
        bar.update(1, 2)
    assert pipe.getvalue() == ""


def _metrics(get_ok: int, put_ok: int, errors: int, fast: int, slow: int, bytes_out: int) -> str:
    """A gateway's /metrics: ``fast`` requests under 5 ms, ``slow`` ones between 50 and 100 ms."""
    total = fast + slow
    lines = [
        "# TYPE objstore_requests counter",
        f'objstore_requests_total{{role="gateway",op="GetObject",status="200"}} {get_ok}',
        f'objstore_requests_total{{role="gateway",op="PutObject",status="200"}} {put_ok}',
        f'objstore_requests_total{{role="gateway",op="PutObject",status="503"}} {errors}',
        f'objstore_requests_total{{role="gateway",op="metrics",status="200"}} {get_ok}',  # scrapes: left out
        "# TYPE objstore_request_seconds histogram",
    ]
    for le, n in (("0.005", fast), ("0.05", fast), ("0.1", total), ("+Inf", total)):
        lines.append(f'objstore_request_seconds_bucket{{role="gateway",op="GetObject",le="{le}"}} {n}')
    lines += [f'objstore_request_seconds_count{{role="gateway",op="GetObject"}} {total}',
              f'objstore_request_seconds_sum{{role="gateway",op="GetObject"}} 1.0',
              "# TYPE objstore_bytes_out counter", f'objstore_bytes_out_total{{role="gateway"}} {bytes_out}',
              "# TYPE objstore_s3_requests_in_flight gauge", "objstore_s3_requests_in_flight 3"]  # this scrape too
    return "\n".join(lines) + "\n"


def test_live_figures_rates_and_quantiles_between_two_scrapes():
    a = live_figures.parse([_metrics(100, 10, 0, 100, 0, 1000)], at=10.0)
    b = live_figures.parse([_metrics(300, 30, 20, 296, 4, 41000), _metrics(0, 0, 0, 0, 0, 0)], at=20.0)
    f = live_figures.figures(a, b)
    assert f["requests_per_s"] == 24.0 and f["errors_per_s"] == 2.0
    assert f["bytes_out_per_s"] == 4000.0 and f["in_flight"] == 4  # two gateways
    # 196 of the 200 GETs between took under 5 ms, 4 between 50 and 100 ms (interpolated in the bucket)
    assert f["p50_ms"] == pytest.approx(1000 * 0.005 * 100 / 196, abs=1e-3) and f["p99_ms"] == 75.0
    assert list(f["ops"]) == ["GetObject", "PutObject"] and f["ops"]["GetObject"]["requests_per_s"] == 20.0
    restarted = live_figures.parse([_metrics(5, 0, 0, 5, 0, 0)], at=30.0)
    assert live_figures.figures(b, restarted)["requests_per_s"] == 0.5  # a counter reset counts from zero
    assert live_figures.quantile(0.5, []) is None


def _frame(**over) -> dict:
    node = {"node_id": "s1", "address": "127.0.0.1:7001", "zone": "zone-a", "state": "up", "reachable": True,
            "blob_count": 12, "used_bytes": 2048, "free_bytes": 10**9, "heartbeat_age": 0.4,
            "scrub": {"state": "waiting"}}
    frame = {"time": 0.0, "health": {"state": "degraded", "problems": ["storage node s2 is unreachable"], "code": 1},
             "metadata": {"leader": "m1", "term": 3, "commit_index": 40, "applied_index": 40,
                          "members_reachable": {"m1": True, "m2": True, "m3": False},
                          "objects_below_policy": 2, "bytes_below_policy": 4096, "objects": 9, "buckets": 1},
             "ring_epoch": 5,
             "nodes": [node, {**node, "node_id": "s2", "address": "127.0.0.1:7002", "reachable": False,
                              "blob_count": None, "used_bytes": None, "free_bytes": None, "heartbeat_age": None,
                              "scrub": None}],
             "repair": {"in_flight": 1, "queued": 1, "repaired_objects": 0, "rate_bytes_per_second": 512,
                        "eta_seconds": 8},
             "gateway": {"requests_per_s": 24.0, "errors_per_s": 0.0, "p50_ms": 2.5, "p99_ms": 95.0,
                         "bytes_in_per_s": 0.0, "bytes_out_per_s": 4000.0, "in_flight": 4,
                         "ops": {"GetObject": {"requests_per_s": 20.0, "p50_ms": 2.5, "p99_ms": 95.0}}},
             "gateways": {"known": 1, "answered": 1}}
    frame.update(over)
    return frame


def test_top_screen_shows_requests_raft_redundancy_and_nodes():
    text = render(_frame())
    assert "requests   24.0/s" in text and "p99 95.0 ms" in text
    assert "leader m1  term 3  commit 40" in text and "members 2/3 reachable" in text
    assert "2 objects below policy (4.0 KiB)" in text and "repair: 1 in flight" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("s")]
    assert rows[0].split()[:4] == ["s1", "127.0.0.1:7001", "zone-a", "up"]
    assert "up (unreachable)" in rows[1]
    assert rows[0].index("zone-a") == rows[1].index("zone-a")  # aligned
    assert "measuring" in render(_frame(gateway=None))
    unavailable = render({"time": 0.0, "health": {"state": "unavailable", "problems": ["no answer"], "code": 2},
                          "gateway": None, "gateways": {"known": 0}})
    assert "unavailable" in unavailable and "--gateway" in unavailable


def test_top_redraws_in_place_on_a_terminal_and_appends_when_piped():
    tty = Tty()
    draw(tty, "a\nb", tty=True, first=True)
    draw(tty, "c", tty=True, first=False)
    assert tty.getvalue() == "\x1b[?25l\x1b[2J\x1b[Ha\x1b[K\nb\x1b[K\n\x1b[J\x1b[Hc\x1b[K\n\x1b[J"
    pipe = io.StringIO()
    draw(pipe, "a", tty=False, first=True)
    draw(pipe, "b", tty=False, first=False)
    assert pipe.getvalue() == "a\n\nb\n"


def test_repair_watch_draws_progress_until_nothing_is_below_policy():
    from ops.cli.repair import step

    answers = iter([{"objects_below_policy": 1, "bytes_below_policy": 2048, "rate_bytes_per_second": 1024},
                    {"objects_below_policy": 0, "bytes_below_policy": 0, "rate_bytes_per_second": 0}])
    first = {"objects_below_policy": 2, "bytes_below_policy": 4096, "rate_bytes_per_second": 1024}
    tty, slept = Tty(), []
    last = watch_until(first, lambda: next(answers), lambda s: not s["objects_below_policy"],
                       lambda s: step(s, 4096), 0.5, ProgressBar(tty, label="repair", min_interval=0), slept.append)
    assert last["objects_below_policy"] == 0 and slept == [0.5, 0.5]
    frames = [f for f in tty.getvalue().split("\r\x1b[K") if f]
    assert frames[0].startswith("repair  [") and "0.0%" in frames[0] and "ETA 0m04s" in frames[0]
    assert "50.0%" in frames[1] and "1 objects / 2.0 KiB below policy" in frames[1]
    assert tty.getvalue().endswith("\r\x1b[K")  # the bar is erased before the final table


def test_scrub_wait_draws_the_pass_on_a_terminal_and_returns_the_final_status():
    import asyncio

    from ops.cli.scrub import wait_for_pass

    def running(done: int) -> dict:
        return {"passes_completed": 0, "rate_bytes_per_s": 0, "pass": {
            "progress": done / 100, "bytes_done": done, "bytes_total": 100, "elapsed": 1.0,
            "blobs_done": done // 10, "blobs_total": 10}}

    class Storage:
        answers = iter([running(10), running(60), {"passes_completed": 1, "pass": None}])

        async def scrub_status(self, address: str) -> dict:
            return next(self.answers)

    async def no_sleep(_: float) -> None:
        return None

    tty = Tty()
    final = asyncio.run(wait_for_pass(Storage(), "h:1", 1, ProgressBar(tty, label="scrub s1", min_interval=0),
                                      sleep=no_sleep))
    assert final["passes_completed"] == 1
    out = tty.getvalue()
    assert "scrub s1  [" in out and "10 B of 100 B" in out and "60 B of 100 B" in out and "6/10 blobs" in out
    assert "60 B/s" in out and "ETA 0m00s" in out and out.endswith("\r\x1b[K")
