"""Buckets and objects through boto3 against a real local cluster."""
from __future__ import annotations

import base64
import hashlib
import os
import uuid
from typing import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.conftest import temporary_bucket
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration


@pytest.fixture(params=["replica:3", "ec:4+2"])
def bucket(request, s3) -> Iterator[str]:
    """Every object test runs on a replicated and on an erasure-coded bucket."""
    yield from temporary_bucket(s3, request.param)


def error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_bucket_lifecycle(s3):
    name = f"life-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e.value) == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e.value) == "NoSuchBucket"


@pytest.mark.parametrize("name", ["ab", "UPPER", "a" * 64, "-start", "end-", "a..b", "192.168.1.1", "under_score", "xn--abc"])
def test_invalid_bucket_names_are_refused(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert error_code(e.value) == "InvalidBucketName"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_bucket_policy_header(cluster, s3):
    name = f"pol-{uuid.uuid4().hex[:10]}"

    def add_policy(request, **_):
        request.headers["x-objstore-policy"] = "replica:2"

    s3.meta.events.register("before-sign.s3.CreateBucket", add_policy)
    try:
        s3.create_bucket(Bucket=name)
    finally:
        s3.meta.events.unregister("before-sign.s3.CreateBucket", add_policy)
    s3.put_object(Bucket=name, Key="two", Body=b"two copies")
    assert s3.get_object(Bucket=name, Key="two")["Body"].read() == b"two copies"
    s3.delete_object(Bucket=name, Key="two")
    s3.delete_bucket(Bucket=name)


def test_put_get_head_delete_roundtrip(s3, bucket):
    body = os.urandom(300_000)
    put = s3.put_object(
        Bucket=bucket, Key="dir/file.bin", Body=body, ContentType="application/x-test",
        ContentEncoding="identity", ContentDisposition='attachment; filename="f.bin"',
        CacheControl="max-age=60", Expires="Wed, 21 Oct 2037 07:28:00 GMT",
        Metadata={"color": "blue", "Owner-Name": "Ann"},
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dir/file.bin")
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"]
    assert got["ContentType"] == "application/x-test"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == 'attachment; filename="f.bin"'
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentLength"] == len(body)
    assert got["Metadata"] == {"color": "blue", "owner-name": "Ann"}
    head = s3.head_object(Bucket=bucket, Key="dir/file.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]
    assert head["Metadata"]["color"] == "blue"
    s3.delete_object(Bucket=bucket, Key="dir/file.bin")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="dir/file.bin")
    assert error_code(e.value) == "NoSuchKey"
    # DeleteObject is idempotent.
    s3.delete_object(Bucket=bucket, Key="dir/file.bin")


def test_overwrite_replaces_content(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second version")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second version"


def test_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["ContentLength"] == 0 and got["Body"].read() == b""
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


def test_ranges(s3, bucket):
    body = bytes(range(256)) * 1000
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    r = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert r["Body"].read() == body[10:20]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == body[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(body) - 3}-")["Body"].read() == body[-3:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=100-99999999")["Body"].read() == body[100:]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(body)}-")
    assert error_code(e.value) == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_content_md5_verified(s3, bucket):
    body = b"hello md5"
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket=bucket, Key="ok", Body=body, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad", Body=body, ContentMD5=bad)
    assert error_code(e.value) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256", "SHA1", "CRC64NVME"])
def test_flexible_checksums_verified_and_returned(s3, bucket, algorithm):
    body = os.urandom(70_000)
    put = s3.put_object(Bucket=bucket, Key=f"ck-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"]
    got = s3.get_object(Bucket=bucket, Key=f"ck-{algorithm}", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got[f"Checksum{algorithm}"] == put[f"Checksum{algorithm}"]


def test_wrong_checksum_is_refused(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-crc", Body=b"data", ChecksumCRC32="AAAAAA==")
    assert error_code(e.value) in ("BadDigest", "InvalidRequest")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad-crc")


@pytest.mark.parametrize("key", [
    "../../etc/passwd", "a/../../b", "ünïcödé/ключ/鍵", "spaces and +plus+ &amp; %41", "x" * 1024,
    "trailing/", "/leading", "quote\"s'and<tags>", "tab\there", "emoji-🙂",
])
def test_odd_keys_roundtrip(s3, bucket, key):
    data = key.encode() + b"!"
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]]
    assert key in listed


def test_key_too_long_is_refused(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert error_code(e.value) == "KeyTooLongError"


def test_missing_bucket_and_key_errors(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-here", Key="x")
    assert error_code(e.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="no-such-bucket-here", Key="x", Body=b"1")
    assert error_code(e.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="absent")
    assert error_code(e.value) == "NoSuchKey"
    assert e.value.response["ResponseMetadata"]["RequestId"]


def test_virtual_hosted_style(cluster, bucket):
    vs3 = make_s3(cluster, addressing="virtual")
    port = cluster.s3_port

    def to_loopback(request, **_):
        # <bucket>.localhost does not resolve here; connect to 127.0.0.1 with the same Host.
        request.headers["Host"] = request.url.split("/")[2]
        request.url = request.url.replace(f"{bucket}.localhost:{port}", f"127.0.0.1:{port}", 1)

    vs3.meta.events.register_last("before-send.s3", to_loopback)
    vs3.put_object(Bucket=bucket, Key="vhost/key", Body=b"virtual")
    assert vs3.get_object(Bucket=bucket, Key="vhost/key")["Body"].read() == b"virtual"
    assert [o["Key"] for o in vs3.list_objects_v2(Bucket=bucket)["Contents"]] == ["vhost/key"]


def test_wrong_credentials(cluster, bucket):
    import boto3
    from botocore.config import Config

    def client(ak, sk):
        return boto3.client("s3", endpoint_url=cluster.endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                            region_name="us-east-1", config=Config(retries={"max_attempts": 1}))

    with pytest.raises(ClientError) as e:
        client("NOSUCHACCESSKEY", "whatever").put_object(Bucket=bucket, Key="denied", Body=b"x")
    assert error_code(e.value) == "InvalidAccessKeyId"
    with pytest.raises(ClientError) as e:
        client(cluster.access_key, "wrong-secret").put_object(Bucket=bucket, Key="denied", Body=b"x")
    assert error_code(e.value) == "SignatureDoesNotMatch"
    s3 = client(cluster.access_key, cluster.secret_key)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="denied")
