"""Faults against a real local cluster: a storage node killed, the whole cluster restarted."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid

import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration


def test_storage_node_sigkill_loses_nothing(tmp_path):
    with LocalCluster(tmp_path / "data") as cluster:
        s3 = make_s3(cluster)
        s3.create_bucket(Bucket="faults")
        acked: dict[str, bytes] = {}
        for i in range(30):
            body = os.urandom(1000 + i * 5000)
            s3.put_object(Bucket="faults", Key=f"before/{i}", Body=body)
            acked[f"before/{i}"] = body
        cluster.kill_node("s2")  # SIGKILL
        for i in range(30):
            body = os.urandom(2000 + i * 3000)
            s3.put_object(Bucket="faults", Key=f"after/{i}", Body=body)
            acked[f"after/{i}"] = body
        for key, body in acked.items():
            assert s3.get_object(Bucket="faults", Key=key)["Body"].read() == body, key
        listed = {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="faults")
                  for o in p.get("Contents", [])}
        assert listed == set(acked)


def test_restart_keeps_every_object(tmp_path):
    data = tmp_path / "data"
    objects = {f"k/{i}": os.urandom(i * 7919 % 200_000) for i in range(40)}
    port = None
    with LocalCluster(data, storage_nodes=3) as cluster:  # three metadata nodes: the Raft group restarts
        port = cluster.s3_port
        s3 = make_s3(cluster)
        s3.create_bucket(Bucket="keep")
        for k, v in objects.items():
            s3.put_object(Bucket="keep", Key=k, Body=v)
    with LocalCluster(data, storage_nodes=3, s3_port=port) as cluster:
        s3 = make_s3(cluster)
        for k, v in objects.items():
            got = s3.get_object(Bucket="keep", Key=k)["Body"].read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(v).digest(), k
        assert {o["Key"] for o in s3.list_objects_v2(Bucket="keep")["Contents"]} == set(objects)


def test_second_up_on_same_data_dir_is_refused(cluster):
    """Against the session's running cluster (left as it was)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run(
        [sys.executable, "-m", "ops.cli", "up", "--data-dir", str(cluster.data_dir), "--s3-port", str(port)],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode != 0
    assert "in use" in r.stderr
    # The running cluster is unharmed, and its cluster.json still says it runs (admin
    # commands and benchmarks read it).
    assert not json.loads((cluster.data_dir / "cluster.json").read_text()).get("stopped")
    s3 = make_s3(cluster)
    name = f"still-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=name)
    s3.delete_bucket(Bucket=name)
