"""Monitoring, proved against a real Prometheus scraping a real ``objstore up --prometheus``.

One cluster for the module (4 storage nodes, 3 metadata nodes, Prometheus scraping and
evaluating every second, /metrics behind a bearer token Prometheus reads from a file) under a light S3 load running in a thread: each role's /metrics
passes ``promtool check metrics``; every process answers /health/live and /health/ready;
the targets file names every process; the gateway logs a JSON line per request into its
log file; every dashboard query returns data in that
Prometheus; ``objstore status`` exits 0; then a storage node is killed: the node-down alert
goes pending (or firing) naming it, and ``objstore status`` exits 1 (degraded).

Queries of metrics exported by other parts (``ops.grafana.dashboard.EXTERNAL_METRICS``:
heartbeats, scrub, repair) are checked only when ``EXTERNAL_READY`` is true.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from typing import Any, Iterator

import pytest

from ops.grafana import dashboard
from tests.cluster_harness import LocalCluster, free_port
from tests.integration.conftest import make_s3

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                       reason="prometheus missing: apt-get install prometheus (ops/install.sh)"),
]

EXTERNAL_READY = True  # heartbeats, scrub and repair export their metrics
TOKEN = "monitoring-test-token"  # every /metrics requires it; Prometheus reads it from a file
RATE_WINDOW = "10s"  # what Grafana's $__rate_interval would be at a 1 s scrape interval
ROLE_METRICS = {
    "gateway": ("objstore_requests_total", "objstore_request_seconds", "objstore_s3_requests_in_flight",
                "objstore_s3_errors_total", "objstore_gateway_backend_request_duration_seconds"),
    "storage": ("objstore_storage_capacity_bytes", "objstore_storage_free_bytes", "objstore_storage_used_bytes",
                "objstore_storage_blobs", "objstore_storage_fsync_duration_seconds",
                "objstore_storage_commit_batch_records", "objstore_storage_corrupt_reads_total"),
    "metadata": ("objstore_raft_role", "objstore_raft_proposal_duration_seconds",
                 "objstore_raft_read_index_duration_seconds", "objstore_raft_log_fsync_duration_seconds",
                 "objstore_raft_log_entries_per_fsync", "objstore_raft_snapshot_bytes", "objstore_metadata_term"),
    "leader": ("objstore_cluster_nodes", "objstore_cluster_ring_epoch", "objstore_cluster_objects",
               "objstore_cluster_bytes", "objstore_bucket_bytes", "objstore_bucket_objects",
               "objstore_bucket_versions", "objstore_bucket_incomplete_uploads"),
}


def get(url: str, timeout: float = 5, token: str = "") -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    status, body = get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert status == 200, (expr, body[:500])
    return json.loads(body)["data"]["result"]


def poll(fn, timeout: float, interval: float = 0.5):
    """``fn()`` until truthy (returned) or ``timeout`` seconds (returns the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def status_cmd(c: LocalCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", "status", "--data-dir", str(c.data_dir), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str]]:
    port = free_port()
    base = tmp_path_factory.mktemp("monitored")
    (base / "metrics-token").write_text(TOKEN + "\n")
    (base / "metrics-token").chmod(0o600)
    c = LocalCluster(base / "data", storage_nodes=4,
                     extra_args=("--prometheus", "--prometheus-port", str(port), "--prometheus-interval", "1",
                                 "--log-format", "json", "--metrics-token-file", str(base / "metrics-token")))
    c.start(timeout=90)
    try:
        yield c, f"http://127.0.0.1:{port}"
    finally:
        c.stop()


@pytest.fixture(scope="module")
def load(monitored) -> Iterator[str]:
    """A bucket with objects, a versioned overwrite, an incomplete upload, and a thread
    writing, reading and missing objects until the module ends."""
    c, _ = monitored
    s3 = make_s3(c)
    bucket = f"mon-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.create_multipart_upload(Bucket=bucket, Key="unfinished")
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.is_set():
            key = f"k{i % 20}"
            s3.put_object(Bucket=bucket, Key=key, Body=b"x" * (1000 + i))
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                s3.head_object(Bucket=bucket, Key="missing")
            except Exception:  # noqa: BLE001 - the 404 is the point
                pass
            i += 1
            stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(3)
    try:
        yield bucket
    finally:
        stop.set()
        thread.join(timeout=10)


def leader_address(c: LocalCluster) -> str:
    for p in c.processes("metadata"):
        _, body = get(f"http://{p['address']}/metrics", token=TOKEN)
        if b'objstore_raft_role{role="leader"} 1.0' in body:
            return p["address"]
    raise AssertionError("no metadata leader")


def test_each_roles_metrics_pass_promtool(monitored, load):
    c, _ = monitored
    addresses = {role: c.processes(role)[0]["address"] for role in ("gateway", "storage", "metadata")}
    addresses["leader"] = leader_address(c)
    for role, address in addresses.items():
        assert get(f"http://{address}/metrics")[0] == 401, role
        status, body = get(f"http://{address}/metrics", token=TOKEN)
        assert status == 200
        checked = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=30)
        assert checked.returncode == 0, (role, checked.stdout + checked.stderr)
        text = body.decode()
        missing = [name for name in ROLE_METRICS[role] if f"\n{name}" not in text]
        assert not missing, (role, missing)
    leader = get(f"http://{addresses['leader']}/metrics", token=TOKEN)[1].decode()
    assert f'objstore_bucket_incomplete_uploads{{bucket="{load}"}} 1.0' in leader


def test_every_process_is_live_and_ready(monitored):
    c, _ = monitored
    for p in c.processes():
        for path in ("/health", "/health/live", "/health/ready"):
            status, body = get(f"http://{p['address']}{path}")
            assert status == 200, (p["id"], path, body)


def test_targets_file_names_every_process(monitored):
    c, _ = monitored
    entries = json.loads((c.data_dir / "prometheus" / "targets.json").read_text())
    assert sorted((e["labels"]["node_id"], e["targets"][0]) for e in entries) == sorted(
        (p["id"], p["address"]) for p in c.processes())
    assert (c.data_dir / "prometheus" / "data").stat().st_mode & 0o077 == 0


def test_gateway_logs_one_json_line_per_request(monitored, load):
    c, _ = monitored
    log = next(p["log"] for p in c.processes("gateway"))

    def access_lines() -> list[dict]:
        lines = [json.loads(x) for x in open(log, encoding="utf-8") if x.startswith("{")]
        return [x for x in lines if x["logger"] == "objstore.access" and x["op"] == "GetObject"]

    lines = poll(access_lines, timeout=10)
    assert lines and lines[-1]["bucket"] == load and lines[-1]["status"] == 200 and lines[-1]["bytes_out"] > 0
    assert {"request_id", "latency_ms", "bytes_in", "error"} <= set(lines[-1])


def test_every_dashboard_query_returns_data(monitored, load):
    _, prom = monitored
    model = dashboard.build()
    empty, waiting_for_other_parts = [], []
    for title, expr in dashboard.queries(model):
        expr = expr.replace("$__rate_interval", RATE_WINDOW)
        if dashboard.external(expr) and not EXTERNAL_READY:
            waiting_for_other_parts.append(title)
            continue
        if not poll(lambda: query(prom, expr), timeout=15):
            empty.append((title, expr))
    assert not empty, empty
    print("panels waiting for metrics of other parts:", sorted(set(waiting_for_other_parts)))


def test_status_is_healthy_then_a_killed_storage_node_alerts_and_degrades(monitored, load):
    c, prom = monitored
    healthy = status_cmd(c)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "health     healthy" in healthy.stdout
    c.kill_node("s4", signal.SIGKILL)

    def alert() -> list[dict]:
        _, body = get(f"{prom}/api/v1/alerts")
        return [a for a in json.loads(body)["data"]["alerts"]
                if a["labels"]["alertname"] == "ObjstoreStorageNodeDown" and a["state"] in ("pending", "firing")]

    alerts = poll(alert, timeout=20)
    assert [a["labels"]["node_id"] for a in alerts] == ["s4"], alerts
    degraded = status_cmd(c, "--json")
    assert degraded.returncode == 1, degraded.stdout + degraded.stderr
    assert "storage node s4 is unreachable" in json.loads(degraded.stdout)["health"]["problems"]


def test_status_without_a_metadata_leader_is_unavailable():
    out = subprocess.run([sys.executable, "-m", "ops.cli", "status", "--metadata", f"127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OBJSTORE_CLUSTER_SECRET": "test-secret"})
    assert out.returncode == 2 and "cannot reach the metadata service" in out.stderr, out.stderr
