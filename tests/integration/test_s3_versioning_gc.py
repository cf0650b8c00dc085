"""Garbage collection under versioning, checked on the storage nodes themselves: a version's
blobs go once its record is gone and the storage nodes' GC grace has passed (replaced null
version, version deleted by id, null version replaced by a null delete marker), and never
while any record points to them. The cluster runs with a GC grace of 2 s."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.cluster_harness import LocalCluster
from tests.conftest import running_cluster
from tests.integration.conftest import make_s3
from tests.integration.internals import ClusterInternals

pytestmark = pytest.mark.integration
RECLAIM_ARGS = ("--gc-grace", "2", "--gc-interval", "0.5", "--compaction-interval", "1")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory, "gc-cluster", RECLAIM_ARGS)


@pytest.fixture(scope="module")
def s3(cluster: LocalCluster):
    return make_s3(cluster)


@pytest.fixture(scope="module")
def blobs(cluster) -> ClusterInternals:
    return ClusterInternals(cluster)


def enable(s3, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def test_deleting_a_version_by_id_collects_only_its_blobs(s3, bucket, blobs):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    r1, r2 = blobs.version(bucket, "k", v1), blobs.version(bucket, "k", v2)
    assert blobs.present(r1) == 3 and blobs.present(r2) == 3
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]  # a marker: nothing collected
    s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    blobs.wait_gone(r1)
    assert blobs.present(r2) == 3
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"


def test_replaced_null_versions_are_collected(s3, bucket, blobs):
    s3.put_object(Bucket=bucket, Key="k", Body=b"unversioned")
    old_null = blobs.version(bucket, "k", "null")
    enable(s3, bucket)
    v = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    kept = blobs.version(bucket, "k", v)
    enable(s3, bucket, "Suspended")
    s3.put_object(Bucket=bucket, Key="k", Body=b"suspended")  # replaces the old null version
    blobs.wait_gone(old_null)
    new_null = blobs.version(bucket, "k", "null")
    s3.delete_object(Bucket=bucket, Key="k")  # a null marker replaces the null version
    blobs.wait_gone(new_null)
    assert blobs.present(kept) == 3
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v)["Body"].read() == b"versioned"
