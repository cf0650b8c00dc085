"""A corrupt replica is never served: GET moves on to a good replica, or fails cleanly."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.harness.disk import files_holding, flip
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration


def replica_files(data_dir: Path, pattern: bytes) -> list[tuple[Path, int]]:
    """(file, offset) of every on-disk copy of ``pattern`` under the storage nodes' dirs."""
    return files_holding(data_dir / "storage", pattern)


@pytest.mark.parametrize("size", [5000, 3 * 1024 * 1024])  # a segment record, a blob file
def test_corrupt_replicas_are_skipped_then_refused(cluster, bucket, size):
    s3 = make_s3(cluster)
    marker = os.urandom(32)
    body = marker + os.urandom(size - len(marker))
    s3.put_object(Bucket=bucket, Key=f"fragile-{size}", Body=body)
    copies = replica_files(cluster.data_dir, marker)
    assert len(copies) == 3, copies  # replica:3
    for i, (path, offset) in enumerate(copies):
        flip(path, offset + 5)
        if i < len(copies) - 1:
            # Some replica is still good: the client gets the exact bytes.
            assert s3.get_object(Bucket=bucket, Key=f"fragile-{size}")["Body"].read() == body
    # Every replica is corrupt: a clean error, never the damaged bytes.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key=f"fragile-{size}")["Body"].read()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)
