"""Fixtures: one real local cluster shared by the integration tests of a session, and clients."""
from __future__ import annotations

import uuid
from typing import Iterator

import boto3
import pytest
from botocore.config import Config

from tests.cluster_harness import LocalCluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("cluster") / "data")
    c.start()
    try:
        yield c
    finally:
        c.stop()


def make_s3(cluster: LocalCluster, addressing: str = "path", **config) -> "boto3.client":
    return boto3.client(
        "s3",
        endpoint_url=cluster.endpoint if addressing == "path" else cluster.endpoint.replace("127.0.0.1", "localhost"),
        aws_access_key_id=cluster.access_key,
        aws_secret_access_key=cluster.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": addressing}, retries={"max_attempts": 1}, **config),
    )


@pytest.fixture(scope="session")
def s3(cluster: LocalCluster):
    return make_s3(cluster)


@pytest.fixture
def bucket(s3) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)
