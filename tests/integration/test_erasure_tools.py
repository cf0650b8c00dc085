"""Real clients on an erasure-coded (``ec:4+2``) bucket: the AWS CLI's multipart upload and
ranged part downloads, and rclone's copy, check and download, byte for byte."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Iterator

import pytest

from tests.conftest import temporary_bucket
from tests.integration.test_aws_cli import aws
from tests.integration.test_tools_rclone import Rclone
from tests.integration.tools_support import assert_same_tree, make_tree, read_tree

pytestmark = pytest.mark.integration

MIB = 1024**2


@pytest.fixture
def ec_bucket(s3) -> Iterator[str]:
    yield from temporary_bucket(s3, "ec:4+2")


def test_aws_s3_cp_multipart_up_and_down_on_an_ec_bucket(cluster, ec_bucket, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(20 * MIB + 7))  # 3 parts of 8 MiB, 8 MiB, 4 MiB + 7
    aws(cluster, "s3", "cp", str(src), f"s3://{ec_bucket}/big.bin")
    head = json.loads(aws(cluster, "s3api", "head-object", "--bucket", ec_bucket, "--key", "big.bin").stdout)
    assert head["ContentLength"] == 20 * MIB + 7 and head["ETag"].endswith('-3"')
    dst = tmp_path / "dst.bin"
    aws(cluster, "s3", "cp", f"s3://{ec_bucket}/big.bin", str(dst))
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_rclone_copy_check_and_download_on_an_ec_bucket(cluster, ec_bucket, tmp_path):
    rclone = Rclone(cluster, tmp_path / "home")
    src = tmp_path / "src"
    files = make_tree(src)
    rclone("copy", str(src), f"obj:{ec_bucket}/tree")
    rclone("check", str(src), f"obj:{ec_bucket}/tree")
    down = tmp_path / "down"
    rclone("copy", f"obj:{ec_bucket}/tree", str(down))
    assert_same_tree(files, read_tree(down))
