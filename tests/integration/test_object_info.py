"""``objstore object info`` on a real cluster: a replica:3 and an ec:4+2 object (table and
--json), a multipart object's row groups, and ``objstore status`` showing bucket policies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

from tests.conftest import temporary_bucket

pytestmark = pytest.mark.integration

MIB = 1024**2


@pytest.fixture
def ec_bucket(s3) -> Iterator[str]:
    yield from temporary_bucket(s3, "ec:4+2")


@pytest.fixture
def replica_bucket(s3) -> Iterator[str]:
    yield from temporary_bucket(s3, "replica:3")


def cli(cluster, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ops.cli", *args, "--data-dir", str(cluster.data_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def object_info(cluster, bucket: str, key: str, *extra: str) -> tuple[str, dict]:
    table = cli(cluster, "object", "info", bucket, key, *extra)
    assert table.returncode == 0, table.stderr
    js = cli(cluster, "object", "info", bucket, key, *extra, "--json")
    assert js.returncode == 0, js.stderr
    return table.stdout, json.loads(js.stdout)


def storage_nodes(cluster) -> dict[str, str]:
    return {p["id"]: p["address"] for p in cluster.processes("storage")}


def test_object_info_of_a_replica_3_object(cluster, s3, replica_bucket):
    put = s3.put_object(Bucket=replica_bucket, Key="r.bin", Body=os.urandom(100_000))
    table, info = object_info(cluster, replica_bucket, "r.bin")
    assert info["policy"] == "replica:3" and info["size"] == 100_000
    assert f'"{info["etag"]}"' == put["ETag"] and info["ring_epoch"] >= 1 and info["checksums"]
    [group] = info["parts"]
    assert group["part"] is None and len(group["blobs"]) == 3
    nodes = storage_nodes(cluster)
    assert len({b["node_id"] for b in group["blobs"]}) == 3
    for b in group["blobs"]:
        assert b["index"] == 0 and b["address"] == nodes[b["node_id"]] and b["zone"] and b["has_blob"] == "yes"
        assert b["node_id"] in table and b["address"] in table
    assert "policy      replica:3" in table and info["etag"] in table and "HAS BLOB" in table


def test_object_info_of_an_ec_4_2_object_and_a_missing_key(cluster, s3, ec_bucket):
    body = os.urandom(3 * MIB + 5)
    s3.put_object(Bucket=ec_bucket, Key="e.bin", Body=body)
    table, info = object_info(cluster, ec_bucket, "e.bin")
    assert info["policy"] == "ec:4+2;stripe=1048576" and info["size"] == len(body)
    [group] = info["parts"]
    assert [b["index"] for b in group["blobs"]] == list(range(6))
    nodes = storage_nodes(cluster)
    assert {b["node_id"] for b in group["blobs"]} == set(nodes)  # 6 shards on the 6 nodes
    assert all(b["has_blob"] == "yes" and b["address"] == nodes[b["node_id"]] for b in group["blobs"])
    assert "ec:4+2;stripe=1048576" in table
    lines = [ln.split() for ln in table.splitlines() if ln.split() and ln.split()[0].isdigit()]
    assert sorted(int(ln[0]) for ln in lines) == list(range(6)) and all(ln[-1] == "yes" for ln in lines)
    # A small object in an ec bucket is stored as replica:M+1.
    s3.put_object(Bucket=ec_bucket, Key="small", Body=b"s" * 1000)
    _, small = object_info(cluster, ec_bucket, "small")
    assert small["policy"] == "replica:3" and len(small["parts"][0]["blobs"]) == 3
    missing = cli(cluster, "object", "info", ec_bucket, "nope")
    assert missing.returncode == 1 and "nope" in missing.stderr


def test_object_info_of_a_multipart_ec_object_has_a_group_per_part(cluster, s3, ec_bucket):
    up = s3.create_multipart_upload(Bucket=ec_bucket, Key="mp")
    parts = []
    for n, size in ((1, 5 * MIB), (2, 100_000)):
        r = s3.upload_part(Bucket=ec_bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=os.urandom(size))
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=ec_bucket, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})
    versions = s3.list_object_versions(Bucket=ec_bucket, Prefix="mp")["Versions"]
    table, info = object_info(cluster, ec_bucket, "mp", "--version-id", versions[0]["VersionId"])
    assert [g["part"] for g in info["parts"]] == [1, 2]
    assert [g["size"] for g in info["parts"]] == [5 * MIB, 100_000]
    for g in info["parts"]:
        assert [b["index"] for b in g["blobs"]] == list(range(6))
        assert all(b["has_blob"] == "yes" for b in g["blobs"])
    assert table.splitlines()[-1].split()[0] == "2" and "PART" in table


def test_status_shows_bucket_policies(cluster, s3, ec_bucket):
    js = cli(cluster, "status", "--json")
    assert js.returncode == 0, js.stderr
    assert json.loads(js.stdout)["bucket_policies"][ec_bucket] == "ec:4+2"
    table = cli(cluster, "status")
    assert "policies" in table.stdout and "ec:4+2 " in table.stdout
