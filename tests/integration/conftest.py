"""Clients for integration tests (the cluster fixtures live in tests/conftest.py)."""
from __future__ import annotations

import boto3
from botocore.config import Config

from tests.cluster_harness import LocalCluster


def make_s3(cluster: LocalCluster, addressing: str = "path", **config) -> "boto3.client":
    return boto3.client(
        "s3",
        endpoint_url=cluster.endpoint if addressing == "path" else cluster.endpoint.replace("127.0.0.1", "localhost"),
        aws_access_key_id=cluster.access_key,
        aws_secret_access_key=cluster.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": addressing}, retries={"max_attempts": 1}, **config),
    )
