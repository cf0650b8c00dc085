"""Faults against a real local cluster: a storage node killed, the whole cluster restarted."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid

import boto3
import psutil
import pytest
from botocore.config import Config

from objstore.cluster.launcher import Cluster, UpOptions, load_or_create_keys
from objstore.cluster.supervisor import free_port, wait_all_healthy
from tests.cluster_harness import LocalCluster
from tests.harness.eventually import eventually
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


def test_storage_nodes_and_gateway_started_before_any_metadata_node_come_up(tmp_path):
    """``objstore up`` starts every process at once, so a storage node or the gateway may
    ask before a metadata leader exists: both keep trying (heartbeat, key pair, cluster map)
    and the cluster serves once the metadata group starts, seconds later."""
    cluster = Cluster(UpOptions(data_dir=str(tmp_path / "data"), s3_port=free_port(), storage_nodes=3, quiet=True,
                                access_key="EARLYACCESSKEY01", secret_key="early-secret-key/0001"))
    cluster.validate()
    cluster.data_dir.mkdir(mode=0o700, parents=True)
    cluster.keys = load_or_create_keys(cluster.data_dir, cluster.opts.access_key, cluster.opts.secret_key)
    cluster.plan()
    early = [c for c in cluster.children if c.role != "metadata"]
    try:
        for c in early:
            c.start(cluster.child_env(c))
        wait_all_healthy([c for c in early if c.role == "storage"])  # they serve without metadata
        failed = {"storage": "unreachable", "gateway": "waiting for the metadata service"}
        eventually(lambda: all(failed[c.role] in c.log_tail(100_000) for c in early), 30,
                   message="every early process to have tried the metadata service and failed")
        assert all(c.running() for c in early)
        for c in cluster.children:
            if c.role == "metadata":
                c.start(cluster.child_env(c))
        wait_all_healthy(cluster.children, timeout=60)
        cluster._wait_registered()
        s3 = boto3.client("s3", endpoint_url=cluster.endpoint(), aws_access_key_id="EARLYACCESSKEY01",
                          aws_secret_access_key="early-secret-key/0001", region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        s3.create_bucket(Bucket="early")
        s3.put_object(Bucket="early", Key="k", Body=b"stored after a late metadata start")
        assert s3.get_object(Bucket="early", Key="k")["Body"].read() == b"stored after a late metadata start"
    finally:
        cluster.stop(grace=5)


def test_children_stop_when_the_launcher_is_killed(tmp_path):
    """A SIGKILL of ``objstore up`` (no chance to stop its children in order) still ends
    every service it started: each asked the kernel for SIGTERM on its parent's death."""
    cluster = LocalCluster(tmp_path / "data", storage_nodes=3).start()
    pids = cluster.child_pids()
    try:
        assert len(pids) == 3 + 3 + 1 and all(psutil.pid_exists(p) for p in pids)
        cluster.proc.kill()
        cluster.proc.wait()

        def gone(pid: int) -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        eventually(lambda: all(gone(p) for p in pids), 30, message="every child of the killed launcher to end")
    finally:
        for pid in pids:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
