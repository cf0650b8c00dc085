"""An ``ec:4+2`` cluster of real processes (``objstore up --default-policy ec:4+2``, six
storage nodes in three zones) loses two storage nodes to SIGKILL: every object, whole or
ranged, single-part or multipart, small (stored as replica:3) or coded, reads back
byte-identical from what is left."""
from __future__ import annotations

import os

import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("killed", [("s1", "s4"), ("s2", "s6")])  # one zone's nodes; two zones' nodes
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
