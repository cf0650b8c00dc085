"""An ``ec:4+2`` cluster of real processes (``objstore up --default-policy ec:4+2``, six
storage nodes in three zones) loses two storage nodes to SIGKILL: every object, whole or
ranged, single-part or multipart, small (stored as replica:3) or coded, reads back
byte-identical from what is left; and a node SIGKILLed while it serves a 64 MiB GET
does not change a byte of it."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration


# One zone's nodes; two zones' nodes (slow: the same loss of two shards of six).
@pytest.mark.parametrize("killed", [("s1", "s4"), pytest.param(("s2", "s6"), marks=pytest.mark.slow)])
def test_two_storage_nodes_sigkilled_lose_nothing(tmp_path, killed):
    with LocalCluster(tmp_path / "data", extra_args=("--default-policy", "ec:4+2")) as cluster:
        s3 = make_s3(cluster)
        s3.create_bucket(Bucket="coded")
        objects = {f"k/{i}": os.urandom(size) for i, size in enumerate(
            [0, 1, 5000, 65_535, 65_536, 300_001, 1024 * 1024, 4 * 1024 * 1024 + 3, 9 * 1024 * 1024 + 77])}
        for key, body in objects.items():
            s3.put_object(Bucket="coded", Key=key, Body=body)
        parts = [os.urandom(5 * 1024 * 1024), os.urandom(2 * 1024 * 1024 + 5)]
        up = s3.create_multipart_upload(Bucket="coded", Key="mp")
        done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket="coded", Key="mp", UploadId=up["UploadId"],
                                                       PartNumber=n, Body=p)["ETag"]}
                for n, p in enumerate(parts, 1)]
        s3.complete_multipart_upload(Bucket="coded", Key="mp", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": done})
        objects["mp"] = b"".join(parts)
        for node in killed:
            cluster.kill_node(node)  # SIGKILL
        for key, body in objects.items():
            assert s3.get_object(Bucket="coded", Key=key)["Body"].read() == body, key
            if len(body) > 10:
                mid = len(body) // 2
                got = s3.get_object(Bucket="coded", Key=key, Range=f"bytes={mid - 5}-{len(body) - 2}")
                assert got["Body"].read() == body[mid - 5:-1], key


def test_a_shard_node_sigkilled_during_a_64_mib_get_the_bytes_still_match(tmp_path):
    with LocalCluster(tmp_path / "data", extra_args=("--default-policy", "ec:4+2")) as cluster:
        s3 = make_s3(cluster)
        s3.create_bucket(Bucket="coded")
        body = os.urandom(64 * 1024 * 1024)
        s3.put_object(Bucket="coded", Key="big", Body=body)
        info = subprocess.run([sys.executable, "-m", "ops.cli", "object", "info", "coded", "big", "--json",
                               "--data-dir", str(cluster.data_dir)], capture_output=True, text=True, timeout=60)
        assert info.returncode == 0, info.stderr
        shards = json.loads(info.stdout)["parts"][0]["blobs"]
        victim = shards[1]["node_id"]  # a data shard: a healthy read fetches it
        stream = s3.get_object(Bucket="coded", Key="big")["Body"]
        got = hashlib.sha256()
        head = stream.read(8 * 1024 * 1024)
        got.update(head)
        cluster.kill_node(victim)  # SIGKILL, with 56 MiB still to come
        read = len(head)
        while chunk := stream.read(1024 * 1024):
            got.update(chunk)
            read += len(chunk)
        assert read == len(body) and got.digest() == hashlib.sha256(body).digest()
        log = (cluster.data_dir / "logs" / "gw1.log").read_text()
        assert any("big" in line and "shard 1 from" in line and "failed at byte" in line
                   for line in log.splitlines()), log  # it died mid-stream: the read went on decoding
