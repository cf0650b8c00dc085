"""Garbage collection under versioning, checked on the storage nodes themselves: a version's
blobs go exactly when its record goes (replaced null version, version deleted by id, null
version replaced by a null delete marker), and never while any record points to them."""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from metadata.client import MetadataClient
from objstore.node.client import StorageClient
from objstore.types import ObjectVersion

pytestmark = pytest.mark.integration


class Blobs:
    """Version records from the metadata service and blob presence on the storage nodes."""

    def __init__(self, cluster) -> None:
        self.secret = json.loads((cluster.data_dir / "credentials.json").read_text())["cluster_secret"]
        self.meta_addrs = [p["address"] for p in cluster.processes("metadata")]
        self.nodes = {p["id"]: p["address"] for p in cluster.processes("storage")}

    def _run(self, fn):
        async def go():
            async with aiohttp.ClientSession() as session:
                meta = MetadataClient(self.meta_addrs, self.secret, session=session, client_id="gc-test")
                return await fn(meta, StorageClient(session, self.secret))
        return asyncio.run(go())

    def version(self, bucket: str, key: str, version_id: str) -> ObjectVersion:
        return self._run(lambda m, s: m.get_object(bucket, key, version_id))

    def present(self, v: ObjectVersion) -> int:
        """How many of the version's blobs are still on their nodes."""
        async def count(m, s):
            refs = [(vid, n) for vid, placement in v.blob_refs() for n in placement]
            found = await asyncio.gather(*(s.head_blob(self.nodes[n], vid, 0) for vid, n in refs))
            return sum(f is not None for f in found)
        return self._run(count)

    def wait_gone(self, v: ObjectVersion, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.present(v):
            if time.monotonic() > deadline:
                raise AssertionError(f"blobs of {v.key} {v.version_id} still present after {timeout}s")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def blobs(cluster) -> Blobs:
    return Blobs(cluster)


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
