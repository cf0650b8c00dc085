"""The benchmark's pure logic: statistics, results, report text, payloads, checks, signing, settings."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
from datetime import datetime, timezone

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ops.bench.loadgen import Payload, PhaseSpec, Recorder, check_get, check_put, drive, record
from ops.bench.monitor import PhaseUsage, cluster_processes
from ops.bench.report import error_summary, format_table, human_bytes, progress_line
from ops.bench.results import RunResult, build_phase_result
from ops.bench.s3client import Outcome, error_kind
from ops.bench.settings import SettingsError, parse_int_list, parse_size, pick_credentials, resolve_settings
from gateway.auth.sign import SigV4Signer
from ops.bench.stats import (RssSummary, cpu_per_1000_ops, cpu_per_gb, mb_per_s, merge_rss, percentile,
                             summarize_latencies, summarize_rss, throughput)
from tests.harness.eventually import eventually


# --- percentiles -------------------------------------------------------------------------

def test_percentile_of_nothing_is_none():
    assert percentile([], 50) is None


def test_percentile_of_one_value_is_that_value_at_every_q():
    assert [percentile([7.0], q) for q in (0, 50, 99, 100)] == [7.0, 7.0, 7.0, 7.0]


def test_percentile_ends_are_min_and_max():
    values = [1.0, 2.0, 5.0, 9.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 9.0


def test_percentile_interpolates_between_ranks():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20], 25) == 12.5
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_identical_values_is_that_value():
    assert percentile([3.0] * 1000, 99) == 3.0


@pytest.mark.parametrize("q", [-0.1, 100.1, float("nan")])
def test_percentile_rejects_q_outside_0_100(q):
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], q)


def test_summary_does_not_depend_on_order():
    values = [0.005, 0.001, 0.003, 0.002, 0.004]
    shuffled = list(values)
    random.Random(4).shuffle(shuffled)
    assert summarize_latencies(values) == summarize_latencies(shuffled)
    s = summarize_latencies(values)
    assert (s.count, s.p50, s.min, s.max) == (5, 0.003, 0.001, 0.005)
    assert s.mean == pytest.approx(0.003)


def test_summary_of_no_latencies_has_no_figures():
    s = summarize_latencies([])
    assert s.count == 0 and s.mean is None and s.p99 is None
    assert s.to_ms() == {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "min": None, "max": None}


def test_summary_in_ms_rounds_to_microseconds():
    assert summarize_latencies([0.0012344]).to_ms()["p50"] == 1.234


# --- throughput and costs ------------------------------------------------------------------

def test_throughput_is_count_over_elapsed():
    assert throughput(100, 2.0) == 50.0


def test_throughput_without_ops_or_time_is_none():
    assert throughput(0, 5.0) is None
    assert throughput(10, 0.0) is None


def test_throughput_rejects_negative_values():
    with pytest.raises(ValueError):
        throughput(-1, 1.0)
    with pytest.raises(ValueError):
        throughput(1, -1.0)


def test_mb_per_s_uses_decimal_megabytes():
    assert mb_per_s(8 * 64 * 2**20, 4.0) == pytest.approx(134.217728)
    assert mb_per_s(0, 4.0) is None


def test_cpu_costs():
    assert cpu_per_1000_ops(2.5, 5000) == pytest.approx(0.5)
    assert cpu_per_1000_ops(2.5, 0) is None
    assert cpu_per_1000_ops(None, 100) is None
    assert cpu_per_gb(3.0, 2 * 10**9) == pytest.approx(1.5)
    assert cpu_per_gb(3.0, 0) is None


def test_rss_summary_tracks_start_peak_end_and_growth():
    s = summarize_rss([100, 250, 180])
    assert (s.start, s.peak, s.end, s.growth) == (100, 250, 180, 150)
    assert summarize_rss([300, 200]).growth == 0
    assert summarize_rss([]) is None


def test_merged_rss_takes_first_start_highest_peak_last_end():
    merged = merge_rss([RssSummary(100, 200, 150), None, RssSummary(150, 400, 390), RssSummary(390, 395, 380)])
    assert (merged.start, merged.peak, merged.end, merged.growth) == (100, 400, 380, 300)
    assert merge_rss([None, None]) is None


# --- results and report ----------------------------------------------------------------------

def _small_put(errors=None, usage=None):
    spec = PhaseSpec("small-put", "put", 4096, 32, duration_s=10)
    return build_phase_result(spec, [0.001] * 900 + [0.01] * 100, ops=1000, nbytes=4096 * 1000,
                              error_kinds=errors or {}, elapsed_s=10.0, usage=usage)


def test_phase_result_counts_successes_and_errors_apart():
    r = _small_put({"503 SlowDown": 7, "Timeout": 2},
                   PhaseUsage(RssSummary(10, 30, 20), 4.0, {"gateway": 3.0, "storage": 1.0}, 2.0))
    assert (r.ops, r.errors, r.ops_per_s) == (1000, 9, 100.0)
    assert r.cpu_per_1000_ops == pytest.approx(4.0)
    assert r.client_cpu_share == pytest.approx(0.2)
    d = r.to_dict()
    assert d["error_kinds"] == {"503 SlowDown": 7, "Timeout": 2}
    assert d["latency_ms"]["p50"] == 1.0 and d["latency_ms"]["p99"] == 10.0
    assert d["gateway_rss"] == {"start": 10, "peak": 30, "end": 20, "growth": 20}
    assert d["cpu"]["by_role"] == {"gateway": 3.0, "storage": 1.0}
    assert d["cpu"]["us_per_op"] == pytest.approx(4000.0)  # 4 CPU-s over 1000 ops
    json.dumps(d)


def test_a_phase_with_errors_says_so_plainly():
    r = _small_put({"503 SlowDown": 7, "Timeout": 2})
    line = progress_line(r)
    assert "9 ERRORS" in line and "503 SlowDown x7" in line and "Timeout x2" in line
    assert "no errors" in progress_line(_small_put())
    run = RunResult("http://h:1", "b", True, (r,), monitor_note="no cluster.json in the data dir")
    assert not run.ok and run.to_dict()["errors"] == 9
    table = format_table(run)
    assert "ERRORS in small-put c=32: 9 (503 SlowDown x7, Timeout x2)" in table
    assert "result: 9 ERRORS" in table


def test_unknown_gateway_memory_is_na_with_the_reason():
    run = RunResult("http://h:1", "b", False, (_small_put(),), monitor_note="gateway pid not known or not local")
    assert "gateway RSS: n/a (gateway pid not known or not local)" in format_table(run)
    assert run.to_dict()["gateway_rss"] == {"status": "n/a", "reason": "gateway pid not known or not local"}
    assert run.ok


def test_failed_check_makes_the_run_not_ok():
    spec = PhaseSpec("large-get", "get", 64 << 20, 1, count=8)
    r = build_phase_result(spec, [0.5] * 7, 7, 7 * (64 << 20), {"MD5 mismatch": 1}, 4.0,
                           checks=[{"op": "get", "key": "k", "ok": False}])
    run = RunResult("http://h:1", "b", True, (r,))
    assert run.failed_checks == 1 and not run.ok
    assert "check large-get c=1: get k FAILED" in format_table(run)
    assert "MB/s" in progress_line(r)


def test_human_bytes_and_error_summary():
    assert human_bytes(None) == "-"
    assert human_bytes(4096) == "4 KiB"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(64 << 20) == "64 MiB"
    assert error_summary({"a": 1, "b": 5}) == "b x5, a x1"


def test_error_kind_uses_the_s3_code():
    assert error_kind(503, b"<Error><Code>SlowDown</Code><Message>x</Message></Error>") == "503 SlowDown"
    assert error_kind(500, b"") == "500"


# --- payloads and checks ----------------------------------------------------------------------

async def _collect(payload: Payload, key: str) -> bytes:
    return b"".join([bytes(c) async for c in payload.chunks(key)])


@pytest.mark.parametrize("size", [0, 5, 16, 17, 4096, (1 << 20) + 3])
async def test_payload_chunks_are_the_whole_body_and_md5_matches(size):
    p = Payload(size, random.Random(1))
    body = await _collect(p, "k1")
    assert body == p.whole("k1") and len(body) == size
    assert p.md5("k1") == hashlib.md5(body).hexdigest()


def test_payload_bodies_differ_per_key():
    p = Payload(4096, random.Random(1))
    assert p.whole("a") != p.whole("b") and p.md5("a") != p.md5("b")


def test_put_check_compares_etag_with_md5_of_data_sent():
    assert check_put("k", Outcome(200, etag="ABCDEF0123456789abcdef0123456789"),
                     "abcdef0123456789abcdef0123456789")["ok"]
    assert not check_put("k", Outcome(200, etag="0" * 32), "1" * 32)["ok"]
    odd = check_put("k", Outcome(200, etag="xxh-123"), "1" * 32)
    assert odd["ok"] and "not an MD5" in odd["note"]


def test_get_check_requires_length_md5_and_etag_to_agree():
    good = "a" * 32
    assert check_get("k", Outcome(200, nbytes=10, etag=good, md5=good), 10, good)["ok"]
    assert not check_get("k", Outcome(200, nbytes=9, etag=good, md5=good), 10, good)["ok"]
    assert not check_get("k", Outcome(200, nbytes=10, etag=good, md5="b" * 32), 10, good)["ok"]
    assert not check_get("k", Outcome(200, nbytes=10, etag="c" * 32, md5=good), 10, good)["ok"]
    assert check_get("k", Outcome(200, nbytes=10), 10, None)["ok"]


def test_record_counts_each_outcome_once():
    rec = Recorder()
    assert record(rec, Outcome(200, nbytes=5), 0.1)
    assert not record(rec, Outcome(503, error="503 SlowDown"), 0.2)
    assert (rec.ok, rec.nbytes, rec.failed, list(rec.latencies)) == (1, 5, 1, [0.1])


# --- the driver --------------------------------------------------------------------------------

async def test_counted_phase_issues_exactly_count_calls_within_concurrency():
    seen: list[int] = []
    in_flight = peak = 0

    async def one(i: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        seen.append(i)
        in_flight -= 1

    await drive(PhaseSpec("x", "put", 1, 4, count=10), one, clock=lambda: 0.0)
    assert sorted(seen) == list(range(10)) and peak == 4


async def test_timed_phase_stops_issuing_at_the_deadline():
    now = [0.0]

    async def one(i: int) -> None:
        now[0] += 1.0  # each call takes one simulated second
        await asyncio.sleep(0)

    calls: list[int] = []

    async def counted(i: int) -> None:
        calls.append(i)
        await one(i)

    elapsed = await drive(PhaseSpec("x", "put", 1, 1, duration_s=5.0), counted, clock=lambda: now[0])
    assert len(calls) == 5 and elapsed == 5.0


# --- signing -----------------------------------------------------------------------------------

def test_signature_equals_botocore_for_unsigned_payload():
    auth = S3SigV4Auth(Credentials("AKID", "SECRET/KEY"), "s3", "eu-west-1")
    req = AWSRequest(method="GET", url="http://127.0.0.1:9000/b/a%20key/%C3%BC%2Bx?list-type=2&prefix=a%20b",
                     headers={"x-amz-meta-x": "1", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    req.context["client_config"] = argparse.Namespace(s3={"payload_signing_enabled": False})
    auth.add_auth(req)
    when = datetime.strptime(req.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    ours = SigV4Signer("AKID", "SECRET/KEY", "eu-west-1").sign(
        "GET", "127.0.0.1:9000", "/b/a key/ü+x", query={"list-type": "2", "prefix": "a b"},
        headers={"x-amz-meta-x": "1"}, now=when)
    assert req.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    assert ours["Authorization"] == req.headers["Authorization"]


# --- settings and cluster.json -----------------------------------------------------------------

def test_sizes_parse_with_binary_units():
    assert [parse_size(s) for s in ("4096", "4k", "4KiB", "64MiB", "1.5m")] == [4096, 4096, 4096, 64 << 20,
                                                                               int(1.5 * (1 << 20))]
    with pytest.raises(SettingsError):
        parse_size("lots")


def test_concurrency_lists_parse_and_reject_zero():
    assert parse_int_list("1, 32", "--concurrency") == (1, 32)
    with pytest.raises(SettingsError):
        parse_int_list("0,4", "--concurrency")


def test_credentials_precedence_and_pairs():
    env = {"AWS_ACCESS_KEY_ID": "a1", "AWS_SECRET_ACCESS_KEY": "s1",
           "OBJSTORE_ACCESS_KEY": "a2", "OBJSTORE_SECRET_KEY": "s2"}
    stored = {"access_key": "a3", "secret_key": "s3"}
    assert pick_credentials("a0", "s0", env, stored)[:2] == ("a0", "s0")
    assert pick_credentials(None, None, env, stored)[:2] == ("a1", "s1")
    assert pick_credentials(None, None, {"AWS_ACCESS_KEY_ID": "half", **{k: v for k, v in env.items()
                                                                         if k.startswith("OBJ")}}, stored)[:2] \
        == ("a2", "s2")
    assert pick_credentials(None, None, {}, stored)[:2] == ("a3", "s3")
    with pytest.raises(SettingsError):
        pick_credentials("a0", None, env, stored)
    with pytest.raises(SettingsError):
        pick_credentials(None, None, {}, {})


def _args(data_dir, **over):
    base = dict(data_dir=str(data_dir), endpoint=None, access_key=None, secret_key=None, region=None, bucket=None,
                duration=10.0, small_size="4096", large_size="64MiB", large_count=8, concurrency="1,32",
                large_concurrency="1,4", phases="small-put,small-get,large-put,large-get", json=False)
    base.update(over)
    return argparse.Namespace(**base)


def test_settings_come_from_the_data_dir(tmp_path):
    (tmp_path / "cluster.json").write_text(json.dumps({"endpoint": "http://127.0.0.1:9123/", "region": "r1"}))
    (tmp_path / "credentials.json").write_text(json.dumps({"access_key": "AK", "secret_key": "SK"}))
    s = resolve_settings(_args(tmp_path), env={})
    assert (s.endpoint, s.access_key, s.secret_key, s.region) == ("http://127.0.0.1:9123", "AK", "SK", "r1")
    assert (s.large_size, s.concurrency, s.large_concurrency) == (64 << 20, (1, 32), (1, 4))
    with pytest.raises(SettingsError):
        resolve_settings(_args(tmp_path / "missing"), env={})
    with pytest.raises(SettingsError):
        resolve_settings(_args(tmp_path, phases="small-put,medium-get"), env={})


def test_cluster_processes_only_for_the_clusters_own_live_endpoint():
    info = {"endpoint": "http://127.0.0.1:9000",
            "processes": [{"role": "gateway", "id": "gw1", "address": "127.0.0.1:9000", "pid": 42}]}
    procs, why = cluster_processes(info, "http://127.0.0.1:9000/")
    assert why is None and [(p.role, p.pid) for p in procs] == [("gateway", 42)]
    assert cluster_processes(info, "http://127.0.0.1:9001")[1].startswith("the endpoint is not")
    assert cluster_processes({**info, "stopped": True}, "http://127.0.0.1:9000")[1] == \
        "cluster.json says the cluster was stopped"
    assert cluster_processes(None, "http://x:1")[0] == []


async def test_monitor_samples_a_live_gateway_process_and_skips_unknown_pids():
    import subprocess
    import sys
    import time

    from ops.bench.monitor import ClusterProcess, ProcessMonitor

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "gateway"])
    try:
        # The child's command line is visible only once it has exec'd: wait for that.
        import psutil

        eventually(lambda: "gateway" in " ".join(psutil.Process(child.pid).cmdline()), 10, 0.01,
                   message="the child to show its command line")
        procs = [ClusterProcess("gateway", "gw1", "127.0.0.1:9000", child.pid),
                 ClusterProcess("storage", "s1", "127.0.0.1:9001", None)]
        mon = ProcessMonitor(procs, "http://127.0.0.1:9000")
        assert mon.gateway_unavailable is None and mon.cpu_available
        assert any("storage s1" in n for n in mon.notes)
        mon.begin()
        deadline = time.monotonic() + 5
        while len(mon._samples) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        usage = await mon.end()
        assert usage.gateway_rss is not None and usage.gateway_rss.peak > 0
        assert set(usage.cpu_by_role) == {"gateway"} and usage.cluster_cpu_s >= 0
        assert usage.client_cpu_s is not None
    finally:
        child.kill()
        child.wait()
    gone = ProcessMonitor([ClusterProcess("gateway", "gw1", "127.0.0.1:9000", child.pid)], "http://127.0.0.1:9000")
    assert gone.gateway_unavailable == "gateway pid not known or not local"
