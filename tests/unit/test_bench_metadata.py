"""The metadata benchmark: its figures, cluster discovery, options, load loop and one real run."""
from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import types

import psutil
import pytest

from ops.cli import build_parser
from ops.bench_metadata.cli import SettingsError, resolve
from ops.bench_metadata.discovery import (
    DiscoveryError, etcd_initial_cluster, find_target, metadata_processes, parse_addresses, peers_arg,
)
from ops.bench_metadata.figures import (
    PhaseResult, TopologyError, per_fsync, phase_result, pick_leader, prometheus_values,
)
from ops.bench_metadata.report import format_json, format_table
from ops.bench_metadata.runner import RunReport, RunSettings, run_benchmark, run_etcd
from ops.bench_metadata import scale
from ops.bench_metadata.scale import (
    Curve, CurvePoint, ScaleResult, ScaleSettings, collector_pauses, format_scale, newest_snapshot, page_positions,
    scale_key, snapshot_index,
)
from ops.bench_metadata.workload import bench_key, bench_version, run_closed_loop

# --- figures ----------------------------------------------------------------------------------


def test_phase_result_percentiles_rate_and_cores():
    r = phase_result("objstore (1 node)", "write", 16, [0.004, 0.001, 0.003, 0.002, 0.005], errors=1,
                     elapsed_s=2.0, client_cpu_s=1.0, server_cpu_s=3.0)
    assert r.ops == 5 and r.errors == 1
    assert r.p50_s == pytest.approx(0.003)
    assert r.p99_s == pytest.approx(0.004 + 0.96 * 0.001)
    assert r.rate == pytest.approx(2.5)
    assert r.client_cpu == pytest.approx(0.5) and r.server_cpu == pytest.approx(1.5)
    d = r.to_dict()
    assert d["p50_ms"] == 3.0 and d["ops_per_s"] == 2.5 and d["server_cpu_cores"] == 1.5


def test_phase_result_without_samples_has_no_figures():
    r = phase_result("etcd (3 nodes)", "read", 1, [], errors=3, elapsed_s=1.0, first_error="EtcdError: x")
    assert (r.ops, r.p50_s, r.p99_s, r.rate, r.client_cpu) == (0, None, None, None, None)
    assert r.to_dict()["first_error"] == "EtcdError: x"


def test_per_fsync_is_entries_over_fsyncs_between_readings():
    assert per_fsync(100, 1100, 10, 60) == pytest.approx(20.0)
    assert per_fsync(5, 5, 7, 7) is None
    with pytest.raises(ValueError):
        per_fsync(100, 50, 10, 20)


def test_pick_leader_single_node_and_raft_group():
    assert pick_leader({"a:1": {"role": "leader", "term": 3}}) == "a:1"
    group = {"a:1": {"role": "follower", "term": 5}, "b:2": {"role": "leader", "term": 5}, "c:3": None}
    assert pick_leader(group) == "b:2"
    # A deposed leader in an older term loses to the current one.
    stale = {"a:1": {"role": "leader", "term": 4}, "b:2": {"role": "leader", "term": 5}}
    assert pick_leader(stale) == "b:2"


def test_pick_leader_refuses_no_leader_and_independent_nodes():
    with pytest.raises(TopologyError, match="no metadata node"):
        pick_leader({"a:1": {"role": "follower"}, "b:2": None})
    with pytest.raises(TopologyError, match="independent single-node"):
        pick_leader({"a:1": {"role": "leader", "term": 2, "node_id": "m1"},
                     "b:2": {"role": "leader", "term": 2, "node_id": "m2"}})


def test_prometheus_values_sums_labelled_samples_and_skips_comments():
    text = (
        "# HELP etcd_server_is_leader x\n# TYPE etcd_server_is_leader gauge\n"
        "etcd_server_is_leader 1\n"
        'etcd_disk_wal_fsync_duration_seconds_count{a="1"} 40\n'
        'etcd_disk_wal_fsync_duration_seconds_count{a="2"} 2\n'
        "etcd_server_proposals_committed_total 1.234e+03\n"
        "other_metric 9\n"
    )
    got = prometheus_values(text, ("etcd_server_is_leader", "etcd_disk_wal_fsync_duration_seconds_count",
                                   "etcd_server_proposals_committed_total", "absent"))
    assert got == {"etcd_server_is_leader": 1.0, "etcd_disk_wal_fsync_duration_seconds_count": 42.0,
                   "etcd_server_proposals_committed_total": 1234.0}


# --- discovery --------------------------------------------------------------------------------


def test_parse_addresses_strips_schemes_and_refuses_missing_ports():
    assert parse_addresses(" 127.0.0.1:7000, http://h:7001/ ,") == ("127.0.0.1:7000", "h:7001")
    assert parse_addresses(None) == ()
    for bad in ("localhost", "h:", "h:99999", ":80"):
        with pytest.raises(DiscoveryError):
            parse_addresses(bad)


def test_find_target_from_flags_needs_a_secret_from_flag_or_env():
    t = find_target("127.0.0.1:7000", None, None, {"OBJSTORE_CLUSTER_SECRET": "s3cret"})
    assert (t.addresses, t.secret, t.source) == (("127.0.0.1:7000",), "s3cret", "flags")
    assert find_target("h:1", "flag", None, {"OBJSTORE_CLUSTER_SECRET": "env"}).secret == "flag"
    with pytest.raises(DiscoveryError, match="secret"):
        find_target("h:1", None, None, {})


def _write_cluster(d, processes, secret="from-file", stopped=False):
    info = {"endpoint": "http://127.0.0.1:9000", "processes": processes}
    if stopped:
        info["stopped"] = True
    (d / "cluster.json").write_text(json.dumps(info))
    (d / "credentials.json").write_text(json.dumps({"cluster_secret": secret, "access_key": "A"}))


def test_find_target_reads_an_up_clusters_data_dir(tmp_path):
    _write_cluster(tmp_path, [
        {"role": "metadata", "id": "m1", "address": "127.0.0.1:7001", "pid": 11},
        {"role": "storage", "id": "s1", "address": "127.0.0.1:7101", "pid": 12},
        {"role": "metadata", "id": "m2", "address": "127.0.0.1:7002", "pid": None},
    ])
    t = find_target(None, None, str(tmp_path), {})
    assert t.addresses == ("127.0.0.1:7001", "127.0.0.1:7002")
    assert t.pids == (11,) and t.secret == "from-file"
    assert find_target(None, "given", str(tmp_path), {}).secret == "given"


def test_find_target_refuses_missing_stopped_and_empty_clusters(tmp_path):
    with pytest.raises(DiscoveryError, match="--spawn"):
        find_target(None, None, str(tmp_path), {})
    _write_cluster(tmp_path, [{"role": "metadata", "address": "h:1", "pid": 1}], stopped=True)
    with pytest.raises(DiscoveryError, match="stopped"):
        find_target(None, None, str(tmp_path), {})
    _write_cluster(tmp_path, [{"role": "gateway", "address": "h:1", "pid": 1}])
    with pytest.raises(DiscoveryError, match="no metadata"):
        find_target(None, None, str(tmp_path), {})


def test_metadata_processes_and_peer_strings():
    assert metadata_processes({}) == ((), ())
    assert peers_arg(["m1", "m2"], ["h:1", "h:2"]) == "m1=h:1,m2=h:2"
    assert etcd_initial_cluster(["e1"], ["http://h:3"]) == "e1=http://h:3"
    with pytest.raises(ValueError):
        peers_arg(["m1"], [])


# --- options ----------------------------------------------------------------------------------


def _args(*argv):
    return build_parser().parse_args(["bench-metadata", *argv])


def test_options_spawn_and_etcd_defaults():
    s = resolve(_args("--spawn", "1"), {})
    assert isinstance(s, RunSettings)
    assert (s.spawn, s.concurrencies, s.etcd_sizes, s.target, s.duration_s) == (1, (1, 16, 64), (), None, 5.0)
    s = resolve(_args("--spawn", "3", "--etcd", "--concurrency", "2,8", "--duration", "1.5"), {})
    assert (s.spawn, s.etcd_sizes, s.concurrencies, s.duration_s) == (3, (1, 3), (2, 8), 1.5)
    assert resolve(_args("--etcd", "3", "--etcd-only"), {}).skip_objstore
    assert resolve(_args("--spawn", "1"), {}).spawn_peers
    assert not resolve(_args("--spawn", "1", "--single"), {}).spawn_peers


def test_options_metadata_flag_and_data_dir(tmp_path):
    s = resolve(_args("--metadata", "127.0.0.1:7000", "--secret", "x"), {})
    assert s.target.addresses == ("127.0.0.1:7000",)
    _write_cluster(tmp_path, [{"role": "metadata", "address": "127.0.0.1:7005", "pid": 5}])
    s = resolve(_args("--data-dir", str(tmp_path)), {})
    assert s.target.addresses == ("127.0.0.1:7005",) and s.target.secret == "from-file"


def test_options_scale():
    s = resolve(_args("--scale", "1000000", "--scale-loader", "direct", "--scale-concurrency", "64"), {})
    assert s == ScaleSettings(count=1_000_000, loader="direct", concurrency=64, repeats=20)
    assert resolve(_args("--scale", "300000", "--scale-step", "100000"), {}).curve_step == 100_000


def test_scale_restart_timeout_grows_with_the_records():
    """Loading the snapshot and replaying the log behind it grow with the records: a 10M
    run's restart needs more than the 300 s that suit 1M."""
    assert resolve(_args("--scale", "1000000"), {}).restart_timeout == 300
    assert resolve(_args("--scale", "10000000"), {}).restart_timeout == 600
    assert resolve(_args("--scale", "1000000", "--scale-restart-timeout", "900"), {}).restart_timeout == 900


@pytest.mark.parametrize("argv, message", [
    (("--spawn", "1", "--concurrency", "0,4"), "at least 1"),
    (("--spawn", "1", "--concurrency", "a"), "integers"),
    (("--spawn", "1", "--duration", "0"), "positive"),
    (("--etcd-only",), "needs --etcd"),
    (("--spawn", "3", "--single"), "needs --spawn 1"),
    (("--scale", "10"), "at least 1000"),
    (("--scale", "2000", "--scale-step", "-1"), "must not be negative"),
    (("--scale", "2000", "--scale-restart-timeout", "-1"), "must not be negative"),
    (("--data-dir", "/nonexistent/objstore"), "no cluster.json"),
])
def test_options_refused(argv, message):
    with pytest.raises(SettingsError, match=message):
        resolve(_args(*argv), {})


# --- load loop and records --------------------------------------------------------------------


async def test_closed_loop_runs_until_the_duration_with_exact_concurrency():
    now = [0.0]
    in_flight, peak = [0], [0]

    async def op(w: int, i: int) -> None:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        await asyncio.sleep(0)
        now[0] += 0.01
        in_flight[0] -= 1
        if i == 3 and w == 0:
            raise RuntimeError("boom")

    s = await run_closed_loop(op, 4, 1.0, clock=lambda: now[0], cpu_clock=lambda: 0.0)
    assert peak[0] == 4
    assert len(s.latencies) + s.errors == pytest.approx(100, abs=4)
    assert s.errors == 1 and s.first_error == "RuntimeError: boom"
    assert s.elapsed_s == pytest.approx(now[0])


async def test_closed_loop_stops_at_max_ops():
    calls = []

    async def op(w: int, i: int) -> None:
        calls.append((w, i))

    s = await run_closed_loop(op, 3, 60.0, max_ops=10)
    assert len(calls) == 10 and len(s.latencies) == 10
    with pytest.raises(ValueError):
        await run_closed_loop(op, 0, 1.0)


def test_bench_records_are_valid_and_keys_sort_by_load_order():
    v = bench_version("b", "k", "0000000000010000-gw", 1.5, owner="o", ordinal=5)
    assert v.placement == ("s6", "s1", "s2") and len(v.etag) == 32 and v.owner == "o"
    assert bench_key("c16", 3, 12) == "c16/w003/000000012"
    keys = [scale_key(i) for i in (0, 9, 10, 999_999)]
    assert keys == sorted(keys)
    assert page_positions(1_000_000) == {"start": None, "middle": scale_key(500_000), "end": scale_key(998_999)}


def test_newest_snapshot_by_index_in_either_layout(tmp_path):
    names = ["snapshots/snap-00000000000000000900-00000000000000000002.snap",
             "raft/snapshots/snap-00000000000000001000-00000000000000000003.snap",
             "snapshots/snap-00000000000000001000-00000000000000000003.snap.tmp", "snapshots/other.snap"]
    paths = [tmp_path / n for n in names]
    assert snapshot_index(paths[0]) == 900 and snapshot_index(paths[3]) is None
    assert newest_snapshot(paths) == paths[1]
    assert newest_snapshot([]) is None


def test_scale_checks_against_targets():
    curve = [CurvePoint(1000, 1.0, 1000.0, 300.0, 90 << 20), CurvePoint(2000, 2.0, 900.0, 320.0, 100 << 20)]
    r = ScaleResult(count=2000, loader="http", concurrency=8, loaded=2000, load_s=2.0, rss_after_load=100 << 20,
                    restart_read_s=3.0, curve=curve,
                    pages={"start": {"p50_ms": 12.0, "p99_ms": 20.0, "keys": 1000, "bytes": 1,
                                     "http_only_p50_ms": 9.0, "http_only_p99_ms": 10.0, "start_after": None}})
    assert r.checks() == {"rss_under_600MiB": True, "page_p50_under_25ms": True, "page_p99_under_100ms": True,
                          "rate_kept_80pct": True, "restart_under_30s": True}
    assert r.ok and r.load_rate == 1000.0 and r.rate_kept == pytest.approx(0.9)
    assert "900" in format_scale(r) and json.loads(format_scale(r, as_json=True))["curve"][1]["records"] == 2000
    r.pages["end"] = {**r.pages["start"], "p50_ms": 26.0}
    assert r.checks()["page_p50_under_25ms"] is False and not r.ok
    assert "MISSED" in format_scale(r) and json.loads(format_scale(r, as_json=True))["loaded"] == 2000
    r.pages["end"] = {**r.pages["start"], "p99_ms": 101.0}
    assert r.checks()["page_p99_under_100ms"] is False and not r.ok
    r.pages.pop("end")
    r.curve.append(CurvePoint(3000, 3.0, 790.0, 400.0, 110 << 20))
    assert r.checks()["rate_kept_80pct"] is False and not r.ok


def test_scale_curve_points_measure_each_step():
    now = [0.0]
    curve = Curve(1000, lambda: None, clock=lambda: now[0])
    now[0] = 0.5
    curve.mark(1000)
    now[0] = 1.5
    curve.mark(2000)
    curve.mark(2000)  # no records since the last point: ignored
    assert [(p.records, p.seconds, p.commits_per_s) for p in curve.points] == [(1000, 0.5, 2000.0),
                                                                               (2000, 1.5, 1000.0)]
    assert curve.points[0].node_cpu_us_per_commit is None and curve.points[0].rss is None
    assert ScaleSettings(count=300_000).curve_step == 30_000 and ScaleSettings(count=5000).curve_step == 1000
    assert ScaleSettings(count=300_000, step=100_000).curve_step == 100_000


def test_collector_pauses_records_this_process_collections_while_active():
    callbacks = list(gc.callbacks)
    with collector_pauses() as pauses:
        gc.collect()
    gc.collect()  # after the block: not recorded
    assert [g for g, _ in pauses] == [2] and pauses[0][1] >= 0.0
    assert gc.callbacks == callbacks


async def test_pages_are_measured_after_this_process_heap_is_settled(monkeypatch):
    events: list[str] = []

    class Client:
        calls = 0

        async def list_objects(self, bucket, start_after=None, max_keys=1000):
            Client.calls += 1
            events.append("list")
            if Client.calls == 3:  # the third page of the first position: a full collection, and the slowest
                gc.collect()
                await asyncio.sleep(0.05)
            return types.SimpleNamespace(contents=[None] * 1000)

    async def raw_list(session, address, secret, start_after):
        return 123

    monkeypatch.setattr(scale.heap, "settle", lambda: events.append("settle") or 0.001)
    monkeypatch.setattr(scale, "_raw_list", raw_list)
    res = ScaleResult(count=5000, loader="http", concurrency=1)
    await scale._measure_pages(Client(), None, "a:1", "s", ScaleSettings(count=5000, repeats=4), res, os.getpid())
    assert events[0] == "settle" and events.count("settle") == 1 and events.count("list") == 12
    start = res.pages["start"]
    assert start["slowest_sample"] == 3 and start["samples"] == 4 and start["client_gc_max_ms"] > 0
    assert start["p99_ms"] >= 50 and res.pages["middle"]["slowest_sample"] in (1, 2, 3, 4)
    assert "slowest: sample 3 of 4" in format_scale(res) and "heap settled" in res.notes[0]


def test_report_table_and_json():
    r = PhaseResult("objstore (1 node)", "write", 64, 100, 0, 1.0, 0.002, 0.009, per_fsync=12.5)
    text = format_table([r], ["etcd is not installed"])
    assert "objstore (1 node)" in text and "12.5" in text and "note: etcd is not installed" in text
    doc = json.loads(format_json([r], ["n"], {"duration_s": 1.0}))
    assert doc["phases"][0]["ops_per_s"] == 100.0 and doc["notes"] == ["n"]


# --- real processes ---------------------------------------------------------------------------


async def test_etcd_missing_is_reported_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    report, out = RunReport(), io.StringIO()
    await run_etcd(1, RunSettings(duration_s=0.1), report, out)
    assert report.failed and "etcd is not installed" in report.notes[0]
    assert "apt-get install etcd-server" in out.getvalue()


async def test_spawned_node_is_measured_and_stopped():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    out = io.StringIO()
    report = await run_benchmark(RunSettings(concurrencies=(1, 4), duration_s=0.3, spawn=1, spawn_peers=False), out)
    assert [(p.op, p.concurrency) for p in report.phases] == [("write", 1), ("write", 4), ("read", 1), ("read", 4)]
    assert all(p.ops > 0 and p.errors == 0 for p in report.phases), report.phases
    writes = [p for p in report.phases if p.op == "write"]
    assert all(p.per_fsync is not None and p.per_fsync >= 1.0 for p in writes)
    assert not report.failed and report.phases[0].system == "objstore (1 node, single)"
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert not left, f"processes left running: {left}"
