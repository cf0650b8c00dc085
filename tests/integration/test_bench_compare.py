"""``objstore bench --compare`` end to end: the session cluster compared with itself (its gateway
as both endpoints), every workload once, tiny sizes; both sides measured, both buckets cleaned up."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cluster_harness import ROOT

pytestmark = pytest.mark.integration


def test_compare_runs_every_workload_on_both_endpoints_and_cleans_up(cluster, tmp_path):
    env = {**os.environ, "OBJSTORE_COMPARE_SECRET_KEY": cluster.secret_key}
    run = subprocess.run(
        [sys.executable, "-m", "ops.cli", "bench", "--data-dir", str(cluster.data_dir), "--compare", cluster.endpoint,
         "--compare-access-key", cluster.access_key, "--compare-pids-from", str(tmp_path / "no-such-file"),
         "--rounds", "1", "--duration", "0.3", "--small-size", "1KiB", "--large-size", "6MiB",
         "--part-size", "5MiB", "--large-count", "1", "--concurrency", "2", "--large-concurrency", "1",
         "--idle-sample", "0.2", "--json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    endpoint = cluster.endpoint
    assert run.returncode == 0, run.stderr
    assert cluster.secret_key not in run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["ok"] and result["rounds"] == 1
    assert [(w["workload"], w["concurrency"], w["unit"]) for w in result["workloads"]] == [
        ("small-put", 2, "ops/s"), ("small-get", 2, "ops/s"), ("large-put", 1, "MB/s"), ("large-get", 1, "MB/s"),
        ("multipart-put", 1, "MB/s")]
    for w in result["workloads"]:
        for side in ("a", "b"):
            assert w[side]["ops"] >= 1 and w[side]["errors"] == 0 and w[side]["median"] > 0, (w["workload"], side)
            assert w[side]["p99_ms"] > 0
        assert w["ratio"] > 0
        assert w["a"]["cpu_us_per_op"] > 0  # A is the cluster of the data dir: its CPU is measured
        assert w["b"]["cpu_us_per_op"] is None  # B's processes were not found: unknown, not 0
    a, b = result["a"], result["b"]
    assert a["endpoint"] == b["endpoint"] == endpoint and a["bucket"] != b["bucket"]
    assert a["cleanup"]["bucket_deleted"] == a["bucket"] and b["cleanup"]["bucket_deleted"] == b["bucket"]
    assert "objects_not_deleted" not in a["cleanup"] and "objects_not_deleted" not in b["cleanup"]
    assert b["cpu"].startswith("not measured")
