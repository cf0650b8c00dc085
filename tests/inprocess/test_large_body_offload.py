"""Large PUT bodies have their hashing (and, for ec:K+M, their coding) done on the gateway's
worker pool: the stored bytes, the ETag and every check stay exactly as on the event loop."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import threading
from pathlib import Path
from typing import AsyncIterator

import pytest
from botocore.exceptions import ClientError

from gateway.datapath import body as body_mod
from gateway.datapath import erasure_write
from gateway.datapath import offload
from gateway.datapath.offload import OFFLOAD_SIZE
from tests.harness.cluster import InProcessCluster
from tests.harness.disk import files_holding
from tests.harness.eventually import eventually_async
from tests.inprocess.test_erasure_datapath import create_bucket_with_policy

SIZE = OFFLOAD_SIZE + 3 * 1024 * 1024 + 4321  # offloaded; not a whole number of stripes or batches
POLICIES = ["replica:3", "ec:4+2"]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[InProcessCluster]:
    async with InProcessCluster(tmp_path / "cluster", storage_nodes=6) as c:
        for policy in POLICIES:
            await create_bucket_with_policy(c, _bucket(policy), policy)
        yield c


def _bucket(policy: str) -> str:
    return "b-" + policy.replace(":", "-").replace("+", "-")


def _threads(monkeypatch: pytest.MonkeyPatch) -> dict[str, set[str]]:
    """Record the threads the hashing and coding jobs ran on (the pool on, whatever the
    environment says)."""
    monkeypatch.setattr(offload, "WORKERS", 2)
    seen: dict[str, set[str]] = {"hash": set(), "code": set()}
    hash_all, encode = body_mod.BodyStream._hash_all, erasure_write._encode

    def spy_hash(self, pieces):  # type: ignore[no-untyped-def]
        seen["hash"].add(threading.current_thread().name)
        return hash_all(self, pieces)

    def spy_encode(enc, chunk):  # type: ignore[no-untyped-def]
        seen["code"].add(threading.current_thread().name)
        return encode(enc, chunk)

    monkeypatch.setattr(body_mod.BodyStream, "_hash_all", spy_hash)
    monkeypatch.setattr(erasure_write, "_encode", spy_encode)
    return seen


@pytest.mark.parametrize("policy", POLICIES)
async def test_a_large_body_is_hashed_off_the_loop_and_stored_exactly(cluster, policy, monkeypatch):
    seen = _threads(monkeypatch)
    body = os.urandom(SIZE)
    md5 = hashlib.md5(body)
    put = await cluster.s3("put_object", Bucket=_bucket(policy), Key="k", Body=body,
                           ContentMD5=base64.b64encode(md5.digest()).decode(), ChecksumAlgorithm="SHA256")
    assert put["ETag"] == f'"{md5.hexdigest()}"'
    assert put["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    version = await cluster.meta.get_object(_bucket(policy), "k")
    assert version.policy.startswith(policy)
    got = await cluster.s3("get_object", Bucket=_bucket(policy), Key="k")
    assert await asyncio.to_thread(got["Body"].read) == body
    assert seen["hash"] and all(name.startswith("bodywork") for name in seen["hash"])
    if policy.startswith("ec"):
        assert seen["code"] and all(name.startswith("bodywork") for name in seen["code"])


@pytest.mark.parametrize("policy", POLICIES)
async def test_a_large_body_failing_its_digest_stores_nothing(cluster, policy):
    marker = os.urandom(32)
    body = marker + os.urandom(SIZE - len(marker))
    wrong = base64.b64encode(hashlib.md5(body + b"x").digest()).decode()
    with pytest.raises(ClientError) as err:
        await cluster.s3("put_object", Bucket=_bucket(policy), Key="bad", Body=body, ContentMD5=wrong)
    assert err.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError):
        await cluster.s3("head_object", Bucket=_bucket(policy), Key="bad")
    # the nodes drop their aborted uploads' temporary files once they see the stream cut
    await eventually_async(lambda: not any(files_holding(n.data_dir, marker) for n in cluster.nodes.values()),
                           message="a node kept bytes of a body that failed its digest")
