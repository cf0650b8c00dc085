"""Bucket versioning, versioned GET/HEAD/DELETE and ListObjectVersions through boto3 against
a real cluster, including every error case S3 defines for them."""
from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from tests.conftest import SIZES, both_policies

pytestmark = pytest.mark.integration


def enable(s3, bucket: str, status: str = "Enabled") -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def err(exc: pytest.ExceptionInfo) -> tuple[str, int, dict]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["ResponseMetadata"]["HTTPHeaders"]


def all_versions(s3, bucket: str, **kw) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) of every version and delete marker, all
    pages, in the order of the XML documents (boto3 splits Version and DeleteMarker apart)."""
    bodies: list[bytes] = []

    def grab(http_response, **_):
        bodies.append(http_response.content)

    s3.meta.events.register("after-call.s3.ListObjectVersions", grab)
    try:
        for _ in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kw):
            pass
    finally:
        s3.meta.events.unregister("after-call.s3.ListObjectVersions", grab)
    out = []
    for body in bodies:
        for item in ET.fromstring(body):
            kind = item.tag.rsplit("}", 1)[-1]
            if kind in ("Version", "DeleteMarker"):
                f = {c.tag.rsplit("}", 1)[-1]: c.text for c in item}
                out.append((f["Key"], f["VersionId"], f["IsLatest"] == "true", kind == "DeleteMarker"))
    return out


# --- configuration ----------------------------------------------------------------------------


def test_versioning_configuration_round_trip(s3, bucket):
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in got and "MFADelete" not in got  # never configured: empty document
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended", "MFADelete": "Disabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_bad_versioning_configurations_are_refused(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Off"})
    assert err(exc)[:2] == ("MalformedXML", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"MFADelete": "Disabled"})
    assert err(exc)[:2] == ("IllegalVersioningConfigurationException", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"})
    assert err(exc)[:2] == ("NotImplemented", 501)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_versioning(Bucket="no-such-bucket-" + str(time.time_ns()))
    assert err(exc)[:2] == ("NoSuchBucket", 404)


# --- enabled ----------------------------------------------------------------------------------


@both_policies
def test_put_twice_keeps_both_versions_readable_by_id(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"two" and got["VersionId"] == v2
    got = s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    assert got["Body"].read() == b"one" and got["VersionId"] == v1
    head = s3.head_object(Bucket=bucket, Key="k", VersionId=v1)
    assert head["ContentLength"] == 3 and head["VersionId"] == v1
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1, Range="bytes=1-")["Body"].read() == b"ne"


def test_unknown_and_invalid_version_ids(s3, bucket):
    enable(s3, bucket)
    vid = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    other = vid[:-1] + ("x" if vid[-1] != "x" else "y")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=other)
    assert err(exc)[:2] == ("NoSuchVersion", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k", VersionId=other)
    assert err(exc)[1] == 404
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId="not a version")
    assert err(exc)[:2] == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId="null")  # no null version here
    assert err(exc)[:2] == ("NoSuchVersion", 404)


@both_policies
def test_delete_adds_a_marker_and_deleting_the_marker_undeletes(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"keep")["VersionId"]
    d = s3.delete_object(Bucket=bucket, Key="k")
    marker = d["VersionId"]
    assert d["DeleteMarker"] is True and marker not in (v1, "null")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    code, status, headers = err(exc)
    assert (code, status) == ("NoSuchKey", 404)
    assert headers["x-amz-delete-marker"] == "true" and headers["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k")
    assert err(exc)[1] == 404 and err(exc)[2]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker)
    code, status, headers = err(exc)
    assert (code, status) == ("MethodNotAllowed", 405) and headers["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert err(exc)[1] == 405
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert s3.list_objects(Bucket=bucket).get("Contents") is None
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"keep"
    d = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert d["DeleteMarker"] is True and d["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


@both_policies
def test_delete_of_a_version_removes_it_for_good(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    d = s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert d["VersionId"] == v2 and "DeleteMarker" not in d
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=v2)
    assert err(exc)[:2] == ("NoSuchVersion", 404)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)  # again: still a success
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    assert s3.list_object_versions(Bucket=bucket).get("Versions") is None
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", VersionId="bogus!")
    assert err(exc)[:2] == ("InvalidArgument", 400)


def test_bucket_with_versions_or_markers_is_not_empty(s3):
    name = f"vdel-{time.time_ns()}"
    s3.create_bucket(Bucket=name)
    enable(s3, name)
    v = s3.put_object(Bucket=name, Key="k", Body=b"x")["VersionId"]
    m = s3.delete_object(Bucket=name, Key="k")["VersionId"]
    for remaining in (v, m):
        with pytest.raises(ClientError) as exc:
            s3.delete_bucket(Bucket=name)
        assert err(exc)[:2] == ("BucketNotEmpty", 409)
        s3.delete_object(Bucket=name, Key="k", VersionId=remaining)
    s3.delete_bucket(Bucket=name)


# --- null versions and suspension -------------------------------------------------------------


@both_policies
def test_objects_from_before_versioning_are_the_null_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    assert "x-amz-version-id" not in s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]
    enable(s3, bucket)
    assert s3.head_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    v = s3.put_object(Bucket=bucket, Key="k", Body=b"new")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"old"
    assert [x[1] for x in all_versions(s3, bucket)] == [v, "null"]


@both_policies
def test_suspended_writes_replace_the_null_version(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    enable(s3, bucket, "Suspended")
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"null-1")["VersionId"] == "null"
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"null-2")["VersionId"] == "null"
    assert [x[1] for x in all_versions(s3, bucket)] == ["null", v1]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"null-2"
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    assert all_versions(s3, bucket) == [("k", "null", True, True), ("k", v1, False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"versioned"


# --- ListObjectVersions -----------------------------------------------------------------------


def test_list_object_versions_order_latest_and_markers(s3, bucket):
    enable(s3, bucket)
    a1 = s3.put_object(Bucket=bucket, Key="a", Body=b"1")["VersionId"]
    a2 = s3.put_object(Bucket=bucket, Key="a", Body=b"22")["VersionId"]
    bm = s3.delete_object(Bucket=bucket, Key="b")["VersionId"]
    c1 = s3.put_object(Bucket=bucket, Key="c", Body=b"333")["VersionId"]
    page = s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in page["Versions"]] == [
        ("a", a2, True, 2), ("a", a1, False, 1), ("c", c1, True, 3)]
    assert [(m["Key"], m["VersionId"], m["IsLatest"]) for m in page["DeleteMarkers"]] == [("b", bm, True)]
    assert page["IsTruncated"] is False and page["Versions"][0]["ETag"].startswith('"')
    assert page["Versions"][0]["Owner"]["ID"] and page["DeleteMarkers"][0]["Owner"]["ID"]


def test_list_object_versions_pages_with_markers(s3, bucket):
    enable(s3, bucket)
    expected = []
    for key in ("p/x", "p/y", "q"):
        vids = [s3.put_object(Bucket=bucket, Key=key, Body=b"v")["VersionId"] for _ in range(3)]
        expected += [(key, v) for v in reversed(vids)]
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert page["IsTruncated"] is True
    assert (page["NextKeyMarker"], page["NextVersionIdMarker"]) == expected[1]
    got = []
    for p in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}):
        got += [(v["Key"], v["VersionId"]) for v in p.get("Versions", [])]
    assert got == expected
    page = s3.list_object_versions(Bucket=bucket, KeyMarker="p/x", VersionIdMarker=expected[0][1])
    assert [(v["Key"], v["VersionId"]) for v in page["Versions"]] == expected[1:]
    page = s3.list_object_versions(Bucket=bucket, KeyMarker="p/y")
    assert [v["Key"] for v in page["Versions"]] == ["q"] * 3


def test_list_object_versions_prefix_delimiter_and_url_encoding(s3, bucket):
    enable(s3, bucket)
    for key in ("dir/a", "dir/sub/b", "top", "sp ace/x"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/", "sp ace/"]
    assert [v["Key"] for v in page["Versions"]] == ["top"]
    page = s3.list_object_versions(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [v["Key"] for v in page["Versions"]] == ["dir/a"] and page["CommonPrefixes"] == [{"Prefix": "dir/sub/"}]
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert page["IsTruncated"] and page["NextKeyMarker"] == "dir/" and "NextVersionIdMarker" not in page
    # botocore decodes keys only when it chose the encoding itself: here they arrive encoded.
    page = s3.list_object_versions(Bucket=bucket, Prefix="sp", EncodingType="url")
    assert page["EncodingType"] == "url" and [v["Key"] for v in page["Versions"]] == ["sp+ace/x"]  # as S3 encodes


def test_list_object_versions_errors(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=bucket, VersionIdMarker="null")
    assert err(exc)[:2] == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=bucket, KeyMarker="k", VersionIdMarker="garbage!")
    assert err(exc)[:2] == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket=bucket, EncodingType="base64")
    assert err(exc)[:2] == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        s3.list_object_versions(Bucket="no-such-bucket-" + str(time.time_ns()))
    assert err(exc)[:2] == ("NoSuchBucket", 404)


def test_list_objects_pages_past_many_deleted_keys(s3, bucket):
    enable(s3, bucket)
    for i in range(30):
        s3.put_object(Bucket=bucket, Key=f"k{i:02d}", Body=b"x")
    for i in range(30):
        if i % 10:
            s3.delete_object(Bucket=bucket, Key=f"k{i:02d}")
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1})
            for o in p.get("Contents", [])]
    assert keys == ["k00", "k10", "k20"]
    assert len(all_versions(s3, bucket)) == 30 + 27


@both_policies
def test_versions_of_every_size_stay_readable_by_id(s3, bucket):
    enable(s3, bucket)
    bodies = {}
    for body in map(os.urandom, SIZES):
        bodies[s3.put_object(Bucket=bucket, Key="k", Body=body)["VersionId"]] = body
    s3.delete_object(Bucket=bucket, Key="k")  # a marker on top
    for vid, body in bodies.items():
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=vid)
        assert got["Body"].read() == body and got["ContentLength"] == len(body)
        assert s3.get_object(Bucket=bucket, Key="k", VersionId=vid, Range="bytes=100-")["Body"].read() == body[100:]
    first = next(iter(bodies))
    s3.delete_object(Bucket=bucket, Key="k", VersionId=first)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=first)
    assert err(exc)[:2] == ("NoSuchVersion", 404)
    *_, last = bodies
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=last)["Body"].read() == bodies[last]
