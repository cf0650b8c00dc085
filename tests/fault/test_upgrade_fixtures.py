"""Data dirs written by an earlier objstore open with every object intact.

``tests/fixtures/upgrade/*.tar.gz`` were made by ``make_fixture.py`` with the code of
commit ab4428a (before the metadata durability stack was unified): a single-node
metadata service (the pre-Raft layout), a one-voter Raft group and a three-voter Raft
group, each with three storage nodes holding small (segment) and large (own file) blobs,
an overwritten key, a multipart object, a versioned bucket with tags and a delete marker.
Each archive carries ``manifest.json``: the keys and the MD5 of what was written.
"""
from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.cluster_harness import LocalCluster

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "upgrade"

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["single-node-legacy", "raft-1", "raft-3"])
def test_old_data_dir_opens_with_every_object(tmp_path: Path, name: str) -> None:
    with tarfile.open(FIXTURES / f"{name}.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    extra = ("--metadata-nodes", str(manifest["metadata_nodes"]), "--default-policy", "replica:2")
    with LocalCluster(tmp_path / "data", storage_nodes=3, access_key=manifest["access_key"],
                      secret_key=manifest["secret_key"], extra_args=extra) as cluster:
        s3 = boto3.client("s3", endpoint_url=cluster.endpoint, region_name="us-east-1",
                          aws_access_key_id=manifest["access_key"],
                          aws_secret_access_key=manifest["secret_key"],
                          config=Config(retries={"max_attempts": 8, "mode": "standard"}))
        for ref, md5 in manifest["objects"].items():
            bucket, _, rest = ref.partition("/")
            key, _, version = rest.partition("?versionId=")
            kwargs = {"VersionId": version} if version else {}
            body = s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()
            assert hashlib.md5(body).hexdigest() == md5, ref
        head = s3.head_object(Bucket="plain", Key="dir/medium.bin")
        assert head["Metadata"] == {"origin": "fixture"}
        assert head["ContentType"] == "application/x-test"
        tags = s3.get_object_tagging(Bucket="versioned", Key="doc")["TagSet"]
        assert tags == [{"Key": "k", "Value": "v"}]
        for ref in manifest["deleted"]:
            bucket, _, key = ref.partition("/")
            with pytest.raises(ClientError) as err:
                s3.get_object(Bucket=bucket, Key=key)
            assert err.value.response["Error"]["Code"] == "NoSuchKey"
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="plain")["Contents"]]
        assert listed == ["dir/medium.bin", "large.bin", "multi.bin", "small.txt"]
        # The old data dir still takes writes.
        s3.put_object(Bucket="plain", Key="after-upgrade", Body=b"new")
        assert s3.get_object(Bucket="plain", Key="after-upgrade")["Body"].read() == b"new"
