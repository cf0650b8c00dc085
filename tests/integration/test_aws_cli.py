"""The real AWS CLI (installed by the setup) against a real cluster."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def aws_binary() -> str:
    local = Path(sys.executable).parent / "aws"
    found = str(local) if local.exists() else shutil.which("aws")
    if not found:
        pytest.fail("the AWS CLI is not installed; run ops/install.sh")
    return found


def aws(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": cluster.access_key,
        "AWS_SECRET_ACCESS_KEY": cluster.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    r = subprocess.run([aws_binary(), "--endpoint-url", cluster.endpoint, *args], capture_output=True, text=True,
                       env=env, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def test_aws_cli_roundtrip(cluster, tmp_path):
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws(cluster, "s3", "mb", f"s3://{bucket}")
    assert bucket in aws(cluster, "s3", "ls").stdout
    src = tmp_path / "upload.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    aws(cluster, "s3", "cp", str(src), f"s3://{bucket}/dir/upload.bin")
    (tmp_path / "small.txt").write_text("hello objstore\n")
    aws(cluster, "s3", "cp", str(tmp_path / "small.txt"), f"s3://{bucket}/small.txt")
    listing = aws(cluster, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    assert "dir/upload.bin" in listing and "small.txt" in listing
    dst = tmp_path / "download.bin"
    aws(cluster, "s3", "cp", f"s3://{bucket}/dir/upload.bin", str(dst))
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    head = aws(cluster, "s3api", "head-object", "--bucket", bucket, "--key", "small.txt").stdout
    assert '"ContentLength": 15' in head
    missing = aws(cluster, "s3api", "get-object", "--bucket", bucket, "--key", "nope", str(tmp_path / "x"), check=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
    aws(cluster, "s3", "rm", "--recursive", f"s3://{bucket}")
    aws(cluster, "s3", "rb", f"s3://{bucket}")
    assert bucket not in aws(cluster, "s3", "ls").stdout
