"""Fixtures shared by the integration and fault tests: one real local cluster per session."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from tests.cluster_harness import LocalCluster
from tests.integration.conftest import make_s3


def running_cluster(tmp_path_factory: pytest.TempPathFactory, name: str = "cluster",
                    extra_args: tuple[str, ...] = ()) -> Iterator[LocalCluster]:
    """A started LocalCluster (``objstore up`` with ``extra_args``), stopped afterwards."""
    c = LocalCluster(tmp_path_factory.mktemp(name) / "data", extra_args=extra_args)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory)


@pytest.fixture(scope="session")
def s3(cluster: LocalCluster):
    return make_s3(cluster)


@pytest.fixture
def bucket(request, s3) -> Iterator[str]:
    """A bucket of the cluster's default policy, or of the policy a test parametrizes it
    with (``both_policies``)."""
    yield from temporary_bucket(s3, getattr(request, "param", None))


POLICIES = ("replica:3", "ec:4+2")
# Runs a test once per data policy: its ``bucket`` is replica:3, then ec:4+2.
both_policies = pytest.mark.parametrize("bucket", POLICIES, indirect=True)
# Object sizes that take each write path of an ec bucket: replica:M+1 below 64 KiB, coded
# and sent whole, coded and streamed over several stripes.
SIZES = (1000, 200 * 1024, 2 * 1024 * 1024 + 3)


def temporary_bucket(s3, policy: str | None = None) -> Iterator[str]:
    """A new bucket (of the cluster's default policy, or ``policy``) for one test; emptied
    and deleted after it."""
    name = f"test-{uuid.uuid4().hex[:12]}"

    def add_policy(request, **_):
        request.headers["x-objstore-policy"] = policy

    if policy is not None:
        s3.meta.events.register("before-sign.s3.CreateBucket", add_policy)
    try:
        s3.create_bucket(Bucket=name)
    finally:
        if policy is not None:
            s3.meta.events.unregister("before-sign.s3.CreateBucket", add_policy)
    yield name
    # Every version and delete marker, so tests may turn versioning on.
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for u in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
    s3.delete_bucket(Bucket=name)
