"""ListObjectsV2 and ListObjects v1 through boto3 against a real cluster."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

KEYS = ["a/1", "a/2", "a/b/3", "b/1", "c", "d/x/y", "e 1", "e+2"]


@pytest.fixture
def filled(s3, bucket):
    for k in KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def test_list_v2_all(s3, filled):
    r = s3.list_objects_v2(Bucket=filled)
    assert [o["Key"] for o in r["Contents"]] == sorted(KEYS)
    assert r["KeyCount"] == len(KEYS) and not r["IsTruncated"]
    sizes = {o["Key"]: o["Size"] for o in r["Contents"]}
    assert sizes["a/b/3"] == len(b"a/b/3")


def test_list_v2_delimiter_and_prefix(s3, filled):
    r = s3.list_objects_v2(Bucket=filled, Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["c", "e 1", "e+2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/", "d/"]
    r = s3.list_objects_v2(Bucket=filled, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]


def test_list_v2_pagination(s3, filled):
    seen, token, pages = [], None, 0
    while True:
        kw = {"Bucket": filled, "MaxKeys": 3}
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_objects_v2(**kw)
        pages += 1
        seen += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert seen == sorted(KEYS) and pages == 3
    paginated = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=filled, PaginationConfig={"PageSize": 2})
        for o in page.get("Contents", [])
    ]
    assert paginated == sorted(KEYS)


def test_list_v2_start_after_and_max_keys(s3, filled):
    r = s3.list_objects_v2(Bucket=filled, StartAfter="b/1")
    assert [o["Key"] for o in r["Contents"]] == ["c", "d/x/y", "e 1", "e+2"]
    r = s3.list_objects_v2(Bucket=filled, MaxKeys=0)
    assert "Contents" not in r and r["KeyCount"] == 0


def test_list_v2_delimiter_pages_count_prefixes_once(s3, filled):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=filled, Delimiter="/", PaginationConfig={"PageSize": 2}
    ):
        out += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert sorted(out) == ["a/", "b/", "c", "d/", "e 1", "e+2"]
    assert len(out) == len(set(out))


def test_list_encoding_type_url(s3, filled):
    # boto3 asks for encoding-type=url by default and decodes the result; the keys come back intact.
    r = s3.list_objects_v2(Bucket=filled, Prefix="e")
    assert [o["Key"] for o in r["Contents"]] == ["e 1", "e+2"]


def test_list_v1_marker(s3, filled):
    r = s3.list_objects(Bucket=filled, MaxKeys=3)
    assert [o["Key"] for o in r["Contents"]] == sorted(KEYS)[:3] and r["IsTruncated"]
    r2 = s3.list_objects(Bucket=filled, Marker=r["Contents"][-1]["Key"])
    assert [o["Key"] for o in r2["Contents"]] == sorted(KEYS)[3:]
    r3 = s3.list_objects(Bucket=filled, Delimiter="/", MaxKeys=2)
    assert r3["IsTruncated"] and r3["NextMarker"] == "b/"
    all_v1 = [o["Key"] for page in s3.get_paginator("list_objects").paginate(Bucket=filled, PaginationConfig={"PageSize": 3})
              for o in page.get("Contents", [])]
    assert all_v1 == sorted(KEYS)


def test_list_missing_bucket(s3):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="no-such-bucket-zz")
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
