"""Every process serves /health and /metrics; `objstore status` shows the cluster."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def metrics(address: str) -> dict[str, list]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def sample(families: dict, name: str, **labels: str) -> float:
    for fam in families.values():
        for s in fam:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_every_process_is_healthy_and_serves_metrics(cluster):
    for proc in cluster.processes():
        health = cluster.health(proc["address"])
        assert health["status"] == "ok", proc
        fams = metrics(proc["address"])
        assert "objstore_requests" in fams, proc["role"]


def test_gateway_counts_requests_bytes_and_latency(cluster, s3, bucket):
    gw = cluster.processes("gateway")[0]["address"]
    before = metrics(gw)
    body = b"m" * 12345
    s3.put_object(Bucket=bucket, Key="metered", Body=body)
    s3.get_object(Bucket=bucket, Key="metered")["Body"].read()
    with pytest.raises(Exception):
        s3.get_object(Bucket=bucket, Key="missing")
    after = metrics(gw)
    req = "objstore_requests_total"
    assert sample(after, req, op="PutObject", status="200") == sample(before, req, op="PutObject", status="200") + 1
    assert sample(after, req, op="GetObject", status="200") == sample(before, req, op="GetObject", status="200") + 1
    assert sample(after, req, op="GetObject", status="404") == sample(before, req, op="GetObject", status="404") + 1
    assert sample(after, "objstore_bytes_in_total") - sample(before, "objstore_bytes_in_total") == len(body)
    assert sample(after, "objstore_bytes_out_total") - sample(before, "objstore_bytes_out_total") == len(body)
    count = "objstore_request_seconds_count"
    assert sample(after, count, op="PutObject") == sample(before, count, op="PutObject") + 1


def test_storage_nodes_report_bytes_used(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="used", Body=b"u" * 50_000)
    used = {}
    for proc in cluster.processes("storage"):
        used[proc["id"]] = sample(metrics(proc["address"]), "objstore_storage_used_bytes", node=proc["id"])
    assert sum(1 for v in used.values() if v >= 50_000) >= 2, used


def test_status_command(cluster):
    cmd = [sys.executable, "-m", "ops.cli", "status", "--data-dir", str(cluster.data_dir)]
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert table.returncode == 0, table.stderr
    assert "ring epoch" in table.stdout
    for proc in cluster.processes("storage"):
        assert proc["id"] in table.stdout and proc["address"] in table.stdout
    js = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=30)
    status = json.loads(js.stdout)
    assert status["ring_epoch"] >= 1
    assert {n["node_id"] for n in status["nodes"]} == {p["id"] for p in cluster.processes("storage")}
    assert all(n["state"] == "up" and n["reachable"] for n in status["nodes"])
