"""Scrubbing on real processes: bytes flipped on one node's disk are found by
``objstore scrub start --wait``, counted in that node's metrics, quarantined and reported;
the leader has the copy rewritten on that node (which counts it repaired), and no GET ever
returns the damaged bytes (replica:3 on 3 nodes, with a multipart part among the damaged
blobs, which a node reports as part 0 under the part's own version id; an ec:4+2 bucket on
6 nodes)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cluster_harness import ROOT, LocalCluster
from tests.conftest import temporary_bucket
from tests.harness.disk import files_holding, flip
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration

SIZES = (3000, 40_000, 200_000, 2 * 1024 * 1024 + 5)  # segment records and blob files


def objstore(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args, "--data-dir", str(cluster.data_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def address_of(cluster: LocalCluster, node_id: str) -> str:
    return next(p["address"] for p in cluster.processes("storage") if p["id"] == node_id)


def metric(cluster: LocalCluster, node_id: str, name: str) -> float:
    with urllib.request.urlopen(f"http://{address_of(cluster, node_id)}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(rf'^{name}{{node="{node_id}"}} (\S+)$', text, re.M)
    assert m, f"{name} not in the metrics of {node_id}"
    return float(m.group(1))


def put_objects(s3, bucket: str) -> dict[str, tuple[bytes, bytes]]:
    """key -> (marker, body) for objects of every size, each body starting with its marker."""
    objects = {}
    for i, size in enumerate(SIZES * 2):
        marker = os.urandom(16)
        body = marker + os.urandom(size - len(marker))
        s3.put_object(Bucket=bucket, Key=f"obj-{i}", Body=body)
        objects[f"obj-{i}"] = (marker, body)
    return objects


def damage(cluster: LocalCluster, marker: bytes) -> str:
    """Flip a byte of the first blob holding ``marker`` on disk; returns the node id holding it."""
    root = cluster.data_dir / "storage"
    path, offset = files_holding(root, marker)[0]
    flip(path, offset + 5)
    return path.relative_to(root).parts[0]


def assert_all_read_back(s3, bucket: str, objects: dict[str, tuple[bytes, bytes]], rounds: int = 2) -> None:
    for _ in range(rounds):
        for key, (_, body) in objects.items():
            assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key


def scrub_and_wait(cluster: LocalCluster, node_id: str) -> dict:
    done = objstore(cluster, "scrub", "start", node_id, "--wait", "--timeout", "60", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for_report_attempt(cluster: LocalCluster, node_id: str, corrupt: int) -> dict:
    """The node tried to report the damage (sent when the metadata endpoint exists, else
    a failed attempt it will retry)."""
    deadline = time.monotonic() + 20
    while True:
        st = json.loads(objstore(cluster, "scrub", "status", node_id, "--json").stdout)
        reports = st["reports"]
        if reports["sent"] >= corrupt or reports["failed_attempts"] >= 1:
            return reports
        assert time.monotonic() < deadline, f"no repair report attempted: {st}"
        time.sleep(0.2)


def wait_repaired(cluster: LocalCluster, s3, bucket: str, objects: dict, node_id: str, count: int) -> dict:
    """Read everything back while waiting for ``node_id`` to count ``count`` repaired."""
    deadline = time.monotonic() + 30
    while True:
        assert_all_read_back(s3, bucket, objects, rounds=1)
        st = json.loads(objstore(cluster, "scrub", "status", node_id, "--json").stdout)
        if st["repaired"] >= count:
            assert metric(cluster, node_id, "objstore_scrub_repaired_blobs_total") == st["repaired"]
            return st
        assert time.monotonic() < deadline, f"not repaired: {st}"
        time.sleep(0.3)


def put_multipart(s3, bucket: str, key: str) -> tuple[bytes, bytes]:
    """A two-part object whose second part (a segment record) starts with its marker."""
    marker = os.urandom(16)
    bodies = [os.urandom(5 * 1024 * 1024), marker + os.urandom(30_000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                                      PartNumber=n, Body=b)["ETag"]} for n, b in enumerate(bodies, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts})
    return marker, b"".join(bodies)


def test_scrub_finds_flipped_bytes_on_a_replica_node(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "data", storage_nodes=3,
                      extra_args=("--metadata-nodes", "1", "--default-policy", "replica:3",
                                  "--scrub-rate", "50", "--scrub-interval", "7200")) as cluster:
        s3 = make_s3(cluster)
        bucket = next(temporary_bucket(s3))
        objects = put_objects(s3, bucket)
        objects["mp"] = put_multipart(s3, bucket, "mp")
        small, large, part = objects["obj-0"][0], objects["obj-3"][0], objects["mp"][0]
        # One node's copy of a segment record, of a blob file and of a part rots.
        root = cluster.data_dir / "storage" / "s1"
        for marker in (small, large, part):
            path, offset = files_holding(root, marker)[0]
            flip(path, offset + 5)

        status = scrub_and_wait(cluster, "s1")  # before any read could find the damage
        assert status["node_id"] == "s1" and status["last_pass"]["blobs_total"] == len(objects) + 1  # 2 parts
        assert (status["rate_bytes_per_s"], status["interval_seconds"]) == (50e6, 7200)  # objstore up's flags
        assert status["last_pass"]["corrupt"] == 3 and status["corrupt_found"] == 3
        # Each rotten copy is quarantined until repair rewrites it, which may already have happened.
        assert status["quarantined"] + status["repaired"] == 3, status
        assert metric(cluster, "s1", "objstore_scrub_corrupt_blobs_total") == 3
        assert metric(cluster, "s1", "objstore_scrub_bytes_verified_total") > sum(SIZES)
        assert metric(cluster, "s1", "objstore_scrub_last_full_pass_timestamp_seconds") > 0
        for other in ("s2", "s3"):
            assert metric(cluster, other, "objstore_scrub_corrupt_blobs_total") == 0
        assert_all_read_back(s3, bucket, objects)
        wait_for_report_attempt(cluster, "s1", 3)
        # The only nodes are the three holding copies: each rotten copy is rewritten on s1.
        repaired = wait_repaired(cluster, s3, bucket, objects, "s1", 3)
        assert repaired["quarantined"] == 0 and repaired["corrupt_found"] == 3
        assert scrub_and_wait(cluster, "s1")["last_pass"]["corrupt"] == 0  # the rewritten copies verify
        table = objstore(cluster, "scrub", "status")
        assert table.returncode == 0 and re.search(r"^s1\s+waiting\s", table.stdout, re.M), table.stdout
        nodes = {n["node_id"]: n for n in json.loads(objstore(cluster, "status", "--json").stdout)["nodes"]}
        assert nodes["s1"]["scrub"]["corrupt_found"] == 3 and nodes["s2"]["scrub"]["corrupt_found"] == 0
        assert nodes["s1"]["scrub"]["repaired"] == 3


def test_scrub_finds_a_corrupt_shard_of_an_ec_bucket(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "data", storage_nodes=6, extra_args=("--metadata-nodes", "1")) as cluster:
        s3 = make_s3(cluster)
        bucket = next(temporary_bucket(s3, "ec:4+2"))
        objects = put_objects(s3, bucket)
        node_id = damage(cluster, objects["obj-2"][0])  # shard 0 of a coded 200 KB object starts with its marker

        status = scrub_and_wait(cluster, node_id)
        assert status["corrupt_found"] == 1 and status["last_pass"]["corrupt"] == 1
        assert metric(cluster, node_id, "objstore_scrub_corrupt_blobs_total") == 1
        assert_all_read_back(s3, bucket, objects)
        wait_for_report_attempt(cluster, node_id, 1)
        wait_repaired(cluster, s3, bucket, objects, node_id, 1)  # the shard rebuilt in its slot
