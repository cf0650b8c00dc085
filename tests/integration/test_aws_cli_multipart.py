"""The real AWS CLI's multipart transfers: ``aws s3 cp`` of 100 MiB up and down with its
default settings (8 MiB threshold and parts: a 13-part upload, ranged part downloads)."""
from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest

from tests.integration.test_aws_cli import aws

pytestmark = pytest.mark.integration

MIB = 1024**2


def test_aws_s3_cp_100_mib_up_and_down(cluster, tmp_path):
    bucket = f"cli-mp-{uuid.uuid4().hex[:10]}"
    aws(cluster, "s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src.bin"
    with open(src, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MIB))
    aws(cluster, "s3", "cp", str(src), f"s3://{bucket}/big/src.bin")
    head = json.loads(aws(cluster, "s3api", "head-object", "--bucket", bucket, "--key", "big/src.bin").stdout)
    assert head["ContentLength"] == 100 * MIB
    assert head["ETag"].endswith('-13"')  # 12 parts of 8 MiB and a last one of 4 MiB
    part = json.loads(aws(cluster, "s3api", "head-object", "--bucket", bucket, "--key", "big/src.bin",
                          "--part-number", "13").stdout)
    assert part["ContentLength"] == 4 * MIB and part["PartsCount"] == 13
    dst = tmp_path / "dst.bin"
    aws(cluster, "s3", "cp", f"s3://{bucket}/big/src.bin", str(dst))
    assert dst.stat().st_size == src.stat().st_size
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    uploads = json.loads(aws(cluster, "s3api", "list-multipart-uploads", "--bucket", bucket).stdout or "{}")
    assert not uploads.get("Uploads")
    aws(cluster, "s3", "rm", "--recursive", f"s3://{bucket}")
    aws(cluster, "s3", "rb", f"s3://{bucket}")
