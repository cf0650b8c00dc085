"""Object and bucket tagging through boto3 against a real cluster: the x-amz-tagging header,
Put/Get/DeleteObjectTagging per version, x-amz-tagging-count, bucket tagging, S3's limits."""
from __future__ import annotations

import os
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import SIZES, both_policies

pytestmark = pytest.mark.integration


def tagset(d: dict[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in d.items()]}


def as_dict(resp) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resp["TagSet"]}


def err(exc: pytest.ExceptionInfo) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def test_tags_from_the_put_header_and_the_count_on_get_and_head(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="project=blue&owner=J%C3%BCrgen&empty=")
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {
        "project": "blue", "owner": "Jürgen", "empty": ""}
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert "x-amz-tagging-count" not in s3.head_object(Bucket=bucket, Key="plain")["ResponseMetadata"]["HTTPHeaders"]
    assert s3.get_object_tagging(Bucket=bucket, Key="plain")["TagSet"] == []


@both_policies
def test_put_get_delete_object_tagging_keeps_the_data(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"payload")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({"a": "1", "b": "two words"}))
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"a": "1", "b": "two words"}
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({"c": "3"}))  # replaces the set
    assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"c": "3"}
    assert s3.delete_object_tagging(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"payload" and "TagCount" not in got


@both_policies
def test_object_tagging_per_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
    r = s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1, Tagging=tagset({"gen": "one"}))
    assert r["VersionId"] == v1
    r = s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v1)
    assert as_dict(r) == {"gen": "one"} and r["VersionId"] == v1
    r = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert r["TagSet"] == [] and r["VersionId"] == v2
    assert s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=v1)["VersionId"] == v1
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v1)["TagSet"] == []
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v2[:-1] + "q")
    assert err(exc) == ("NoSuchVersion", 404)
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="k")
    assert err(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=marker, Tagging=tagset({"a": "b"}))
    assert err(exc) == ("MethodNotAllowed", 405)


def test_object_tagging_limits_and_bad_documents(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    bad = [
        {f"k{i}": "v" for i in range(11)},  # more than 10
        {"k" * 129: "v"},  # key too long
        {"k": "v" * 257},  # value too long
        {"aws:reserved": "v"},
    ]
    for tags in bad:
        with pytest.raises(ClientError) as exc:
            s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(tags))
        assert err(exc) == ("InvalidTag", 400), tags
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({f"k{i}": "v" * 256 for i in range(10)}))
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "d", "Value": "1"},
                                                                           {"Key": "d", "Value": "2"}]})
    assert err(exc) == ("InvalidTag", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x", Tagging="&".join(f"t{i}=v" for i in range(11)))
    assert err(exc) == ("InvalidTag", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x", Tagging="a=1&a=2")
    assert err(exc) == ("InvalidTag", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="k2")  # nothing was written
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert err(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="missing", Tagging=tagset({"a": "b"}))
    assert err(exc) == ("NoSuchKey", 404)


def test_malformed_tagging_documents(cluster, s3, bucket):
    """Raw bodies boto3 would never send: each is MalformedXML."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    bodies = [
        b"not xml",
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value><Extra/></Tag></TagSet></Tagging>",
        b"<Tagging></Tagging>",
        b"<Other><TagSet/></Other>",
    ]
    for body in bodies:
        with pytest.raises(ClientError) as exc:
            _put_raw_tagging(s3, bucket, "k", body)
        assert err(exc) == ("MalformedXML", 400), body


def _put_raw_tagging(s3, bucket: str, key: str, body: bytes) -> None:
    """PutObjectTagging with ``body`` swapped in before signing."""

    def swap(request, **_):
        request.data = body
        request.headers["Content-Length"] = str(len(body))
        for h in [h for h in request.headers if h.lower().startswith(("content-md5", "x-amz-checksum-"))]:
            del request.headers[h]

    s3.meta.events.register_first("before-sign.s3.PutObjectTagging", swap)
    try:
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging=tagset({"x": "y"}))
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObjectTagging", swap)


def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert err(exc) == ("NoSuchTagSet", 404)
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({"team": "storage", "cost": "42"}))
    assert as_dict(s3.get_bucket_tagging(Bucket=bucket)) == {"team": "storage", "cost": "42"}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({f"k{i}": "v" for i in range(50)}))
    assert len(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]) == 50
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({f"k{i}": "v" for i in range(51)}))
    assert err(exc) == ("InvalidTag", 400)
    assert s3.delete_bucket_tagging(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert err(exc) == ("NoSuchTagSet", 404)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket="no-such-bucket-" + str(time.time_ns()))
    assert err(exc) == ("NoSuchBucket", 404)


@both_policies
def test_tagging_objects_of_every_size_keeps_the_data(s3, bucket):
    for size in SIZES:
        body = os.urandom(size)
        s3.put_object(Bucket=bucket, Key="k", Body=body, Tagging="gen=1")
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({"size": str(size)}))
        got = s3.get_object(Bucket=bucket, Key="k")
        assert got["Body"].read() == body and got["TagCount"] == 1
        assert as_dict(s3.get_object_tagging(Bucket=bucket, Key="k")) == {"size": str(size)}
