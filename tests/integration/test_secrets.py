"""Secrets at rest and in process lists, and revocation of the bootstrap key, on a real
``objstore up``.

A started cluster keeps nothing under its data dir readable or writable by group or
others, puts no secret on any process's command line (every user of the machine reads
``/proc/<pid>/cmdline``) nor in its logs, and a deleted bootstrap key stops working once
the gateway's credential cache expires.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.cluster_harness import ROOT, LocalCluster

pytestmark = pytest.mark.integration

CACHE_TTL_AND_MARGIN = 5.0 + 5.0  # gateway/context.py CREDENTIAL_TTL, and a margin


def _s3(cluster: LocalCluster):
    return boto3.client("s3", endpoint_url=cluster.endpoint, aws_access_key_id=cluster.access_key,
                        aws_secret_access_key=cluster.secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def _exposed(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) with a group or other permission bit."""
    bad = []
    for path in [root, *root.rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:  # removed while walking (a temporary file)
            continue
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            bad.append(f"{oct(stat.S_IMODE(mode))} {path}")
    return bad


def test_no_secret_readable_by_others_on_disk_or_in_process_lists(cluster, s3, bucket):
    """On the session cluster, after whatever ran before."""
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=os.urandom(1000 + i))
    assert s3.get_object(Bucket=bucket, Key="k1")["Body"].read()
    cluster_secret = __import__("json").loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]

    assert _exposed(cluster.data_dir) == []

    launcher = psutil.Process(cluster.proc.pid)
    procs = [launcher, *launcher.children(recursive=True)]
    assert len(procs) >= 1 + 3 + 3 + 1  # launcher, metadata nodes, storage nodes, gateway
    for p in procs:
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes().decode(errors="replace")
        assert cluster_secret not in cmdline, cmdline
        assert cluster.secret_key not in cmdline, cmdline

    for log in [cluster.output_path, *(cluster.data_dir / "logs").iterdir()]:
        text = log.read_text(errors="replace")
        assert cluster_secret not in text, log
        assert cluster.secret_key not in text, log


def test_deleting_the_bootstrap_key_revokes_it(tmp_path):
    with LocalCluster(tmp_path / "data", storage_nodes=3) as cluster:  # its own: it loses that key
        s3 = _s3(cluster)
        s3.list_buckets()  # the key works, and the gateway has cached it
        proc = subprocess.run([sys.executable, "-m", "ops.cli", "key", "delete", cluster.access_key,
                               "--data-dir", str(cluster.data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + CACHE_TTL_AND_MARGIN
        while True:
            try:
                s3.list_buckets()
            except ClientError as exc:
                r = exc.response
                assert (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]) == (403, "InvalidAccessKeyId")
                return
            assert time.monotonic() < deadline, "the deleted bootstrap key still works"
            time.sleep(0.2)
