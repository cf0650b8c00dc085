"""``objstore bench --compare`` and the disk-limit script: the pure parts (order, medians, ratios,
JSON shape, settings, payload ranges, finding a peer's processes, the disk summary)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys

import pytest

from ops.bench.cli import add_parser
from ops.bench.compare import (CompareResult, Endpoint, compare_workload, cpu_us_per_op, disk_ceiling,
                               format_compare_table, interleave, median, ratio, summarize_side)
from ops.bench.compare_runner import peer_settings
from ops.bench.loadgen import Payload, PhaseSpec
from ops.bench.monitor import PhaseUsage, find_processes, pids_from
from ops.bench.results import build_phase_result
from ops.bench.runner import disk_limit_notes, plan_phases
from ops.bench.settings import DEFAULT_PHASES, PHASES, SettingsError, resolve_settings
from ops.bench_disk import measure, summary

MiB = 1 << 20


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "cluster.json").write_text(json.dumps({"endpoint": "http://127.0.0.1:9123", "region": "r1"}))
    (tmp_path / "credentials.json").write_text(json.dumps({"access_key": "AK", "secret_key": "SK"}))
    return tmp_path


def phase(name: str, size: int, *, ops: int, elapsed: float, latencies: list[float], cpu: float | None = None,
          errors: dict[str, int] | None = None, concurrency: int = 16):
    op = name.split("-")[1]
    spec = PhaseSpec(name, op, size, concurrency, duration_s=elapsed)
    return build_phase_result(spec, latencies, ops, ops * size, errors or {}, elapsed,
                              PhaseUsage(None, cpu) if cpu is not None else None)


# --- interleaving, medians, ratios ------------------------------------------------------------

def test_interleave_runs_each_workload_a_then_b_for_every_round_before_the_next_workload():
    assert interleave(["put", "get"], 2) == [
        ("put", 0, "a"), ("put", 0, "b"), ("put", 1, "a"), ("put", 1, "b"),
        ("get", 0, "a"), ("get", 0, "b"), ("get", 1, "a"), ("get", 1, "b"),
    ]


def test_interleave_refuses_zero_rounds():
    with pytest.raises(ValueError):
        interleave(["put"], 0)


def test_median_of_odd_and_even_counts_and_unknowns():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([None, 5.0, None]) == 5.0
    assert median([None, None]) is None and median([]) is None


def test_ratio_is_a_over_b_and_unknown_without_both_or_with_a_zero_b():
    assert ratio(264.0, 99.0) == pytest.approx(2.6667, rel=1e-4)
    assert ratio(None, 1.0) is None and ratio(1.0, None) is None and ratio(1.0, 0.0) is None


def test_cpu_per_op_in_microseconds_with_and_without_the_idle_share():
    r = phase("small-put", 4096, ops=500, elapsed=2.0, latencies=[0.01] * 500, cpu=1.0)
    assert cpu_us_per_op(r) == pytest.approx(2000.0)
    assert cpu_us_per_op(r, idle_cores=0.1) == pytest.approx((1.0 - 0.2) * 1e6 / 500)
    assert cpu_us_per_op(r, idle_cores=None) is None
    assert cpu_us_per_op(phase("small-put", 4096, ops=0, elapsed=2.0, latencies=[], cpu=1.0)) is None
    assert cpu_us_per_op(phase("small-put", 4096, ops=5, elapsed=2.0, latencies=[0.1] * 5)) is None


def test_a_side_is_summarized_by_the_medians_of_its_rounds():
    rounds = [phase("small-get", 4096, ops=n, elapsed=1.0, latencies=[p99] * 100, cpu=cpu,
                    errors={"503 SlowDown": e} if e else None)
              for n, p99, cpu, e in ((100, 0.010, 0.2, 0), (300, 0.030, 0.3, 2), (200, 0.020, None, 1))]
    s = summarize_side(rounds, idle_cores=0.05)
    assert s.rates == (100.0, 300.0, 200.0) and s.rate == 200.0
    assert s.p99_s == pytest.approx(0.020)
    assert s.cpu_us_per_op == pytest.approx(median([2000.0, 1000.0]))  # the round without CPU left out
    assert s.cpu_us_per_op_above_idle == pytest.approx(median([1500.0, 250000 / 300]))
    assert (s.ops, s.errors, dict(s.error_kinds)) == (600, 3, {"503 SlowDown": 3})


def test_large_workloads_compare_mb_per_s_and_put_reports_its_share_of_the_disk_limit():
    a = [phase("large-put", 64 * MiB, ops=4, elapsed=e, latencies=[1.0] * 4, concurrency=2) for e in (2.0, 4.0, 3.0)]
    b = [phase("large-put", 64 * MiB, ops=4, elapsed=e, latencies=[2.0] * 4, concurrency=2) for e in (4.0, 6.0, 5.0)]
    w = compare_workload(a, b, disk_ceiling_mb_s=disk_ceiling(660.0, 3))
    mb = 4 * 64 * MiB / 1e6
    assert w.unit == "MB/s" and w.a.rate == pytest.approx(mb / 3) and w.b.rate == pytest.approx(mb / 5)
    assert w.ratio == pytest.approx(5 / 3)
    assert w.pair_ratios == pytest.approx((2.0, 1.5, 5 / 3))
    assert w.to_dict()["median_pair_ratio"] == pytest.approx(5 / 3, abs=1e-3)
    assert w.disk_fraction(w.a) == pytest.approx(mb / 3 / 220.0)
    gets = [phase("large-get", 64 * MiB, ops=4, elapsed=1.0, latencies=[1.0] * 4, concurrency=2)]
    assert compare_workload(gets, gets, disk_ceiling_mb_s=220.0).disk_fraction(w.a) is None


def _result() -> CompareResult:
    small_a = [phase("small-put", 4096, ops=264, elapsed=1.0, latencies=[0.05] * 264, cpu=0.5)]
    small_b = [phase("small-put", 4096, ops=99, elapsed=1.0, latencies=[0.2] * 99)]
    return CompareResult(a=Endpoint("http://a:1", "bench-x", True, "10 processes", {"objects_deleted": 264}, 0.1),
                         b=Endpoint("http://b:2", "bench-rep", False, "not measured"), rounds=1,
                         workloads=(compare_workload(small_a, small_b, None, (0.1, None)),), notes=("a note",))


def test_json_shape_of_a_comparison():
    d = json.loads(json.dumps(_result().to_dict()))
    assert set(d) == {"a", "b", "rounds", "order", "ok", "errors", "failed_checks", "workloads", "notes"}
    assert d["a"] == {"endpoint": "http://a:1", "bucket": "bench-x", "bucket_created": True, "cpu": "10 processes",
                      "idle_cpu_cores": 0.1, "cleanup": {"objects_deleted": 264}}
    (w,) = d["workloads"]
    assert (w["workload"], w["op"], w["concurrency"], w["object_size"], w["unit"]) == ("small-put", "put", 16, 4096,
                                                                                       "ops/s")
    assert w["ratio"] == pytest.approx(264 / 99, abs=1e-3) and w["cpu_ratio"] is None
    assert w["pair_ratios"] == [pytest.approx(264 / 99, abs=1e-3)] and w["median_pair_ratio"] == w["ratio"]
    assert w["a"]["median"] == 264.0 and w["a"]["rounds"] == [264.0] and w["a"]["p99_ms"] == 50.0
    assert w["a"]["cpu_us_per_op"] == pytest.approx(1893.9) and w["b"]["cpu_us_per_op"] is None
    assert w["a"]["cpu_us_per_op_above_idle"] == pytest.approx(1515.2)
    assert w["disk_limit_fraction"] is None
    assert d["ok"] is True and d["order"] == "ABAB" and d["notes"] == ["a note"]


def test_table_shows_the_ratio_and_dashes_for_unknown_figures():
    text = format_compare_table(_result())
    row = next(line for line in text.splitlines() if line.startswith("small-put c=16"))
    assert "264.0 ops/s" in row and "99.0 ops/s" in row and "2.67×" in row and " - " in row
    assert "A: http://a:1" in text and "B: http://b:2" in text and "result: no errors" in text


def test_errors_make_the_comparison_fail_and_are_named():
    bad = [phase("small-get", 4096, ops=1, elapsed=1.0, latencies=[0.1], errors={"503 SlowDown": 4})]
    good = [phase("small-get", 4096, ops=1, elapsed=1.0, latencies=[0.1])]
    r = CompareResult(Endpoint("http://a:1", "x", True, "-"), Endpoint("http://b:2", "y", True, "-"), 1,
                      (compare_workload(good, bad),))
    assert not r.ok and r.errors == 4
    assert "ERRORS in small-get c=16 on B: 4 (503 SlowDown x4)" in format_compare_table(r)


# --- settings -----------------------------------------------------------------------------------

def test_single_endpoint_defaults_are_unchanged(data_dir):
    s = resolve_settings(parse("--data-dir", str(data_dir)), env={})
    assert s.compare is None and s.phases == DEFAULT_PHASES and "multipart-put" not in s.phases
    assert (s.concurrency, s.large_concurrency, s.duration_s, s.large_count) == ((1, 32), (1, 4), 10.0, 8)


def test_compare_defaults_are_the_speed_workloads_and_the_secret_comes_from_the_environment(data_dir):
    args = parse("--data-dir", str(data_dir), "--compare", "http://127.0.0.1:18080/", "--compare-access-key",
                 "s3bench:bench", "--compare-bucket", "bench-rep")
    s = resolve_settings(args, env={"OBJSTORE_COMPARE_SECRET_KEY": "benchsecret"})
    assert s.phases == PHASES and s.rounds == 5
    assert (s.concurrency, s.large_concurrency, s.duration_s, s.large_count) == ((16, 64), (2,), 5.0, 4)
    assert (s.part_size, s.part_concurrency, s.large_size, s.small_size) == (8 * MiB, 4, 64 * MiB, 4096)
    c = s.compare
    assert (c.endpoint, c.access_key, c.secret_key, c.region, c.bucket) == (
        "http://127.0.0.1:18080", "s3bench:bench", "benchsecret", "r1", "bench-rep")
    b = peer_settings(s, "abcd")
    assert (b.endpoint, b.access_key, b.secret_key, b.bucket, b.policy, b.compare) == (
        "http://127.0.0.1:18080", "s3bench:bench", "benchsecret", "bench-rep", None, None)
    assert s.endpoint == "http://127.0.0.1:9123" and s.access_key == "AK"


def test_compare_flags_override_the_defaults(data_dir):
    s = resolve_settings(parse("--data-dir", str(data_dir), "--compare", "http://h:1", "--compare-access-key", "k",
                               "--rounds", "7", "--concurrency", "8", "--phases", "small-put,multipart-put",
                               "--compare-region", "eu"), env={"OBJSTORE_COMPARE_SECRET_KEY": "s"})
    assert (s.rounds, s.concurrency, s.phases, s.compare.region) == (7, (8,), ("small-put", "multipart-put"), "eu")
    assert peer_settings(s, "abcd").bucket == "bench-abcd-b"  # not A's default bucket, even on one endpoint
    with pytest.raises(SettingsError):
        resolve_settings(parse("--data-dir", str(data_dir), "--compare", "http://h:1", "--compare-access-key", "k",
                               "--rounds", "0"), env={"OBJSTORE_COMPARE_SECRET_KEY": "s"})


def test_compare_secret_file_must_be_private(data_dir, tmp_path):
    secret = tmp_path / "swift.secret"
    secret.write_text("benchsecret\n")
    args = parse("--data-dir", str(data_dir), "--compare", "http://h:1", "--compare-access-key", "k",
                 "--compare-secret-file", str(secret))
    os.chmod(secret, 0o644)
    with pytest.raises(SettingsError, match="readable by others"):
        resolve_settings(args, env={})
    os.chmod(secret, 0o600)
    assert resolve_settings(args, env={}).compare.secret_key == "benchsecret"


def test_compare_without_a_secret_says_where_to_give_one(data_dir):
    with pytest.raises(SettingsError, match="OBJSTORE_COMPARE_SECRET_KEY"):
        resolve_settings(parse("--data-dir", str(data_dir), "--compare", "http://h:1", "--compare-access-key", "k"),
                         env={})


def test_multipart_workload_is_planned_at_the_large_concurrencies(data_dir):
    s = resolve_settings(parse("--data-dir", str(data_dir), "--phases", "multipart-put,small-get",
                               "--large-concurrency", "2,4", "--concurrency", "16"), env={})
    assert [(p.name, p.op, p.size, p.concurrency, p.count) for p in plan_phases(s)] == [
        ("multipart-put", "put", 64 * MiB, 2, 8), ("multipart-put", "put", 64 * MiB, 4, 8),
        ("small-get", "get", 4096, 16, None)]
    with pytest.raises(SettingsError, match="5 MiB"):
        resolve_settings(parse("--data-dir", str(data_dir), "--part-size", "1MiB"), env={})


def test_disk_limit_note_for_large_puts_only(data_dir):
    s = resolve_settings(parse("--data-dir", str(data_dir), "--disk-limit", "660"), env={})
    put = phase("large-put", 64 * MiB, ops=4, elapsed=4 * 64 * MiB / 110e6, latencies=[1.0] * 4, concurrency=2)
    get = phase("large-get", 64 * MiB, ops=4, elapsed=1.0, latencies=[1.0] * 4, concurrency=2)
    (note,) = disk_limit_notes(s, [put, get])
    assert note.startswith("large-put c=2: 110.0 MB/s is 50% of the disk's limit for 3 copies")
    assert disk_limit_notes(resolve_settings(parse("--data-dir", str(data_dir)), env={}), [put]) == []


# --- multipart bodies ---------------------------------------------------------------------------

@pytest.mark.parametrize("size,part", [(64 * 1024 + 5, 8 * 1024), (40, 16), (3 * MiB + 7, MiB)])
def test_parts_of_a_payload_put_together_are_the_whole_body(size, part):
    p = Payload(size, random.Random(1))

    async def collect(start: int, end: int) -> bytes:
        return b"".join([bytes(c) async for c in p.range_chunks("k", start, end)])

    parts = [asyncio.run(collect(off, min(off + part, size))) for off in range(0, size, part)]
    assert b"".join(parts) == p.whole("k") and all(len(x) == min(part, size - i * part) for i, x in enumerate(parts))


# --- finding the compared store's processes ----------------------------------------------------

def test_pids_from_a_file_or_a_folder_of_pid_files(tmp_path):
    (tmp_path / "one").write_text("12 34\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "proxy.pid").write_text("56\n")
    (run / "object.pid").write_text("78")
    (run / "notes.txt").write_text("99")
    assert pids_from(tmp_path / "one") == [12, 34]
    assert sorted(pids_from(run)) == [56, 78]
    assert pids_from(tmp_path / "missing") == []


def test_processes_are_found_by_pid_and_by_pattern_with_their_children():
    code = "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); " \
           "print(c.pid, flush=True); time.sleep(30)  # bench-compare-find-me"
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert {p.pid for p in find_processes([parent.pid])} == {parent.pid, child}
        assert {p.pid for p in find_processes([], "bench-compare-find-me")} == {parent.pid, child}
        assert os.getpid() not in {p.pid for p in find_processes([os.getpid()], "pytest")}
    finally:
        parent.kill()
        parent.wait()
        try:
            os.kill(child, 9)
        except (OSError, UnboundLocalError):
            pass


# --- the disk-limit script -----------------------------------------------------------------------

def test_disk_streams_write_in_parallel_and_leave_nothing(tmp_path):
    folder = tmp_path / "disk"
    results, wall = measure(folder, 3, 3 * MiB, 2 * MiB)
    assert [r.nbytes for r in results] == [3 * MiB] * 3 and wall > 0
    assert not folder.exists()
    out = summary(results, wall)
    assert out["streams"] == 3 and out["bytes"] == 9 * MiB and len(out["per_stream_mb_per_s"]) == 3
    assert out["client_ceiling_mb_per_s"] == pytest.approx(out["total_mb_per_s"] / 3, abs=0.1)
