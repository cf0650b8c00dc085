"""CopyObject against a real cluster: directives, conditions, errors, checksums, streaming."""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.conftest import temporary_bucket
from tests.integration.conftest import make_s3
from tests.integration.test_bad_input import raw_request, signed_headers, xml_code
from tests.integration.test_streaming_memory import PatternBody, RssSampler

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def error_of(exc: pytest.ExceptionInfo) -> tuple[int, str]:
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def assert_absent(s3, bucket: str, key: str) -> None:
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.fixture(params=["replica:3", "ec:4+2"])
def bucket(request, s3) -> Iterator[str]:
    """Copies into and out of a replicated and an erasure-coded bucket (``other_bucket`` is
    replicated, so copies across buckets cross policies)."""
    yield from temporary_bucket(s3, request.param)


@pytest.fixture
def other_bucket(s3):
    name = f"copy-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


def put_source(s3, bucket: str, key: str = "src", body: bytes = b"hello copy") -> dict:
    return s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/plain", CacheControl="max-age=60",
                         ContentDisposition="attachment", Metadata={"color": "blue", "n": "1"})


def test_copy_same_bucket_copies_bytes_and_metadata(s3, bucket):
    put = put_source(s3, bucket)
    resp = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                          Metadata={"ignored": "yes"}, ContentType="image/png")
    result = resp["CopyObjectResult"]
    assert result["ETag"] == put["ETag"] == f'"{hashlib.md5(b"hello copy").hexdigest()}"'
    assert abs((result["LastModified"] - datetime.now(timezone.utc)).total_seconds()) < 60
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"hello copy"
    # COPY (the default): type, standard headers and user metadata come from the source.
    assert got["ContentType"] == "text/plain"
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == "attachment"
    assert got["Metadata"] == {"color": "blue", "n": "1"}
    assert got["ETag"] == put["ETag"]
    # The source is untouched.
    assert s3.get_object(Bucket=bucket, Key="src")["Body"].read() == b"hello copy"


def test_copy_across_buckets(s3, bucket, other_bucket):
    put_source(s3, bucket)
    s3.copy_object(Bucket=other_bucket, Key="a/b/copied", CopySource=f"{bucket}/src")
    got = s3.get_object(Bucket=other_bucket, Key="a/b/copied")
    assert got["Body"].read() == b"hello copy"
    assert got["Metadata"] == {"color": "blue", "n": "1"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=other_bucket)["Contents"]]
    assert keys == ["a/b/copied"]


def test_replace_directive_takes_metadata_from_request(s3, bucket):
    put_source(s3, bucket)
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", ContentType="application/json", Metadata={"shape": "round"},
                   ContentLanguage="fr")
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"shape": "round"}
    assert head["ContentLanguage"] == "fr"
    assert "CacheControl" not in head and "ContentDisposition" not in head
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"hello copy"


def test_copy_onto_itself_needs_replace(s3, bucket):
    put_source(s3, bucket)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_of(e) == (400, "InvalidRequest")
    assert "copy an object to itself" in e.value.response["Error"]["Message"]
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"fresh": "1"}, ContentType="text/csv")
    got = s3.get_object(Bucket=bucket, Key="src")
    assert got["Body"].read() == b"hello copy"
    assert got["Metadata"] == {"fresh": "1"} and got["ContentType"] == "text/csv"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["src"]


def test_copy_conditions(s3, bucket):
    put = put_source(s3, bucket)
    etag = put["ETag"]
    last_modified = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    past = last_modified - timedelta(days=1)
    future = datetime.now(timezone.utc) + timedelta(days=1)
    src = {"Bucket": bucket, "Key": "src"}
    failing = [
        {"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfNoneMatch": "*"},
        {"CopySourceIfModifiedSince": future},
        {"CopySourceIfUnmodifiedSince": past},
    ]
    for i, cond in enumerate(failing):
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=bucket, Key=f"fail-{i}", CopySource=src, **cond)
        assert error_of(e) == (412, "PreconditionFailed"), cond
        assert_absent(s3, bucket, f"fail-{i}")
    passing = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfMatch": "*"},
        {"CopySourceIfNoneMatch": '"0123456789abcdef0123456789abcdef"'},
        {"CopySourceIfModifiedSince": past},
        {"CopySourceIfUnmodifiedSince": future},
        # If-Match holds, so a failing If-Unmodified-Since is ignored (S3's rule).
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": past},
    ]
    for i, cond in enumerate(passing):
        s3.copy_object(Bucket=bucket, Key=f"ok-{i}", CopySource=src, **cond)
        assert s3.get_object(Bucket=bucket, Key=f"ok-{i}")["Body"].read() == b"hello copy", cond


def test_missing_source_and_destination(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})
    assert error_of(e) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": f"missing-{uuid.uuid4().hex[:8]}", "Key": "k"})
    assert error_of(e) == (404, "NoSuchBucket")
    put_source(s3, bucket)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=f"missing-{uuid.uuid4().hex[:8]}", Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert error_of(e) == (404, "NoSuchBucket")
    assert_absent(s3, bucket, "dst")


@pytest.mark.parametrize("key", ["with space", "ünïcödé/ключ", "q?mark&amp=1", "plus+sign", "100%/x", "a//b"])
def test_url_encoded_source_keys(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.copy_object(Bucket=bucket, Key=f"copy/{key}", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=f"copy/{key}")["Body"].read() == key.encode()


@pytest.mark.parametrize("source", ["/{b}/raw%20key", "{b}/raw%20key"])
def test_raw_copy_source_forms(cluster, s3, bucket, source):
    s3.put_object(Bucket=bucket, Key="raw key", Body=b"raw")
    path = f"/{bucket}/raw-copy"
    h = signed_headers(cluster, "PUT", path, {"x-amz-copy-source": source.format(b=bucket), "Content-Length": "0"})
    status, body = raw_request(cluster, "PUT", path, h)
    assert status == 200 and b"<CopyObjectResult" in body and b"<ETag>" in body
    assert s3.get_object(Bucket=bucket, Key="raw-copy")["Body"].read() == b"raw"


@pytest.mark.parametrize("headers,code", [
    ({"x-amz-copy-source": "{b}"}, "InvalidArgument"),
    ({"x-amz-copy-source": "/{b}/"}, "InvalidArgument"),
    ({"x-amz-copy-source": "{b}/src", "x-amz-metadata-directive": "MERGE"}, "InvalidArgument"),
    ({"x-amz-copy-source": "{b}/src?versionId="}, "InvalidArgument"),
    ({"x-amz-copy-source": "{b}/src", "x-amz-copy-source-range": "bytes=0-1"}, "NotImplemented"),
])
def test_bad_copy_requests(cluster, s3, bucket, headers, code):
    put_source(s3, bucket)
    path = f"/{bucket}/bad-copy"
    h = signed_headers(cluster, "PUT", path, {**{k: v.format(b=bucket) for k, v in headers.items()}, "Content-Length": "0"})
    status, body = raw_request(cluster, "PUT", path, h)
    assert xml_code(body) == code and status == (501 if code == "NotImplemented" else 400)
    assert_absent(s3, bucket, "bad-copy")


def test_empty_object_copy(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    s3.copy_object(Bucket=bucket, Key="empty-copy", CopySource={"Bucket": bucket, "Key": "empty"})
    got = s3.get_object(Bucket=bucket, Key="empty-copy")
    assert got["ContentLength"] == 0 and got["Body"].read() == b""
    assert got["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'


def test_checksums_are_copied_and_requested_ones_computed(s3, bucket):
    body = b"checksummed body" * 100
    put = s3.put_object(Bucket=bucket, Key="ck", Body=body, ChecksumAlgorithm="SHA256")
    resp = s3.copy_object(Bucket=bucket, Key="ck-copy", CopySource={"Bucket": bucket, "Key": "ck"})
    assert resp["CopyObjectResult"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    head = s3.head_object(Bucket=bucket, Key="ck-copy", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == put["ChecksumSHA256"]
    resp = s3.copy_object(Bucket=bucket, Key="ck-crc", CopySource={"Bucket": bucket, "Key": "ck"},
                          ChecksumAlgorithm="CRC32C")
    import base64

    from awscrt import checksums as crt

    want = base64.b64encode(crt.crc32c(body).to_bytes(4, "big")).decode()
    assert resp["CopyObjectResult"]["ChecksumCRC32C"] == want
    head = s3.head_object(Bucket=bucket, Key="ck-crc", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == want and head["ChecksumSHA256"] == put["ChecksumSHA256"]


def test_copy_replaces_existing_destination(s3, bucket):
    put_source(s3, bucket)
    s3.put_object(Bucket=bucket, Key="dst", Body=b"old contents that are longer")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"hello copy"


def test_large_copy_streams_with_bounded_gateway_memory(cluster, bucket):
    s3 = make_s3(cluster, request_checksum_calculation="when_required", response_checksum_validation="when_required")
    size = 65 * MIB  # larger than 64 MiB
    body = PatternBody(size)
    s3.put_object(Bucket=bucket, Key="big", Body=body, ContentLength=size)
    with RssSampler(cluster.pid_of("gw1")) as rss:
        resp = s3.copy_object(Bucket=bucket, Key="big-copy", CopySource={"Bucket": bucket, "Key": "big"})
    assert resp["CopyObjectResult"]["ETag"] == f'"{body.md5.hexdigest()}"'
    md5, got = hashlib.md5(), 0
    for chunk in s3.get_object(Bucket=bucket, Key="big-copy")["Body"].iter_chunks(MIB):
        md5.update(chunk)
        got += len(chunk)
    assert got == size and md5.hexdigest() == body.md5.hexdigest()
    print(f"gateway RSS growth during an {size // MIB} MiB copy: {rss.growth_mib:.1f} MiB")
    assert rss.growth_mib < 40, f"the copy grew the gateway by {rss.growth_mib:.1f} MiB"


# --- versioning, tagging and write conditions ------------------------------------------

def test_unversioned_copy_reports_no_version_ids(s3, bucket):
    put_source(s3, bucket)
    resp = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert "CopySourceVersionId" not in resp and "VersionId" not in resp


def test_copy_a_named_version(s3, bucket, other_bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"second")["VersionId"]
    resp = s3.copy_object(Bucket=other_bucket, Key="old", CopySource={"Bucket": bucket, "Key": "doc", "VersionId": v1})
    assert resp["CopySourceVersionId"] == v1 and "VersionId" not in resp
    assert s3.get_object(Bucket=other_bucket, Key="old")["Body"].read() == b"first"
    resp = s3.copy_object(Bucket=other_bucket, Key="new", CopySource={"Bucket": bucket, "Key": "doc"})
    assert resp["CopySourceVersionId"] == v2
    # Copying an older version onto its own key restores it as a new version...
    resp = s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc", "VersionId": v1})
    v3 = resp["VersionId"]
    assert v3 not in (v1, v2)
    got = s3.get_object(Bucket=bucket, Key="doc")
    assert got["Body"].read() == b"first" and got["VersionId"] == v3
    versions = s3.list_object_versions(Bucket=bucket, Prefix="doc")["Versions"]
    assert [v["VersionId"] for v in versions] == [v3, v2, v1]
    # ...but the current version onto itself is still a no-op copy.
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="doc", CopySource={"Bucket": bucket, "Key": "doc", "VersionId": v3})
    assert error_of(e) == (400, "InvalidRequest")
    for v in s3.list_object_versions(Bucket=bucket)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def test_copy_from_delete_markers_and_missing_versions(cluster, s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="gone", Body=b"x")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="gone")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "gone"})
    assert error_of(e) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "gone", "VersionId": marker})
    assert error_of(e) == (400, "InvalidRequest")
    missing = v1[:-3] + ("gw9" if not v1.endswith("gw9") else "gw8")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "gone", "VersionId": missing})
    assert error_of(e) == (404, "NoSuchVersion")
    path = f"/{bucket}/dst"
    h = signed_headers(cluster, "PUT", path, {"x-amz-copy-source": f"/{bucket}/gone?versionId=bogus",
                                              "Content-Length": "0"})
    status, body = raw_request(cluster, "PUT", path, h)
    assert status == 400 and xml_code(body) == "InvalidArgument"
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "gone", "VersionId": v1})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"x"
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []) + \
            s3.list_object_versions(Bucket=bucket).get("DeleteMarkers", []):
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])


def test_tags_are_copied_or_replaced(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"t", Tagging="colour=red&size=L")
    s3.copy_object(Bucket=bucket, Key="same-tags", CopySource={"Bucket": bucket, "Key": "src"},
                   Tagging="ignored=yes")  # COPY directive: the request's tags are ignored, as S3 does
    tags = s3.get_object_tagging(Bucket=bucket, Key="same-tags")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("colour", "red"), ("size", "L")]
    s3.copy_object(Bucket=bucket, Key="new-tags", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE", Tagging="shape=round")
    assert s3.get_object_tagging(Bucket=bucket, Key="new-tags")["TagSet"] == [{"Key": "shape", "Value": "round"}]
    s3.copy_object(Bucket=bucket, Key="no-tags", CopySource={"Bucket": bucket, "Key": "src"},
                   TaggingDirective="REPLACE")
    assert s3.get_object_tagging(Bucket=bucket, Key="no-tags")["TagSet"] == []


def test_destination_write_conditions(s3, bucket):
    put_source(s3, bucket)
    existing = s3.put_object(Bucket=bucket, Key="taken", Body=b"taken")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="taken", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    assert error_of(e) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"taken"
    s3.copy_object(Bucket=bucket, Key="free", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="taken", CopySource={"Bucket": bucket, "Key": "src"},
                       IfMatch='"0123456789abcdef0123456789abcdef"')
    assert error_of(e) == (412, "PreconditionFailed")
    s3.copy_object(Bucket=bucket, Key="taken", CopySource={"Bucket": bucket, "Key": "src"}, IfMatch=existing["ETag"])
    assert s3.get_object(Bucket=bucket, Key="taken")["Body"].read() == b"hello copy"


def test_copy_of_a_multipart_object_is_a_plain_object(s3, bucket):
    part1, part2 = bytes(range(256)) * (5 * 4096), b"tail" * 1000  # 5 MiB and 4000 bytes
    mpu = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="video/mp4", Metadata={"k": "v"})
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=mpu["UploadId"], PartNumber=i + 1, Body=b)["ETag"]
             for i, b in enumerate((part1, part2))]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=mpu["UploadId"], MultipartUpload={
        "Parts": [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]})
    assert done["ETag"].endswith('-2"')
    resp = s3.copy_object(Bucket=bucket, Key="flat", CopySource={"Bucket": bucket, "Key": "mp"})
    whole = part1 + part2
    assert resp["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(whole).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="flat")
    assert got["Body"].read() == whole and got["ContentType"] == "video/mp4" and got["Metadata"] == {"k": "v"}
    assert "PartsCount" not in s3.head_object(Bucket=bucket, Key="flat", PartNumber=1)
    got = s3.get_object(Bucket=bucket, Key="flat", Range=f"bytes={len(part1) - 2}-{len(part1) + 1}")
    assert got["Body"].read() == whole[len(part1) - 2:len(part1) + 2]


def test_aws_cli_move_presign_and_batch_delete(cluster, s3, bucket, other_bucket):
    import json
    import urllib.request

    from tests.integration.test_aws_cli import aws

    put_source(s3, bucket)
    aws(cluster, "s3", "mv", f"s3://{bucket}/src", f"s3://{other_bucket}/moved")  # CopyObject, DeleteObject
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=other_bucket)["Contents"]] == ["moved"]
    url = aws(cluster, "s3", "presign", f"s3://{other_bucket}/moved", "--expires-in", "60").stdout.strip()
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"hello copy"
    doc = json.dumps({"Objects": [{"Key": "moved"}, {"Key": "absent"}], "Quiet": False})
    out = json.loads(aws(cluster, "s3api", "delete-objects", "--bucket", other_bucket, "--delete", doc).stdout)
    assert sorted(d["Key"] for d in out["Deleted"]) == ["absent", "moved"]
    assert "Contents" not in s3.list_objects_v2(Bucket=other_bucket)
