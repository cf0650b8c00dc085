"""DeleteObjects against a real cluster: results, quiet mode, integrity headers, limits, errors."""
from __future__ import annotations

import base64
import hashlib
import os
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import pytest
from botocore.exceptions import ClientError

from tests.conftest import SIZES, both_policies
from tests.integration.test_bad_input import raw_request, signed_headers, xml_code

pytestmark = pytest.mark.integration

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def keys_in(s3, bucket: str) -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]


def put_keys(s3, bucket: str, keys: list[str]) -> None:
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())


def delete_doc(keys: list[str], quiet: bool = False) -> bytes:
    objs = "".join(f"<Object><Key>{escape(k)}</Key></Object>" for k in keys)
    return f"<Delete><Quiet>{'true' if quiet else 'false'}</Quiet>{objs}</Delete>".encode()


def post_delete(cluster, bucket: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    path = f"/{bucket}?delete"
    h = signed_headers(cluster, "POST", path, {"Content-Length": str(len(body)), **headers})
    return raw_request(cluster, "POST", path, h, body)


def md5_header(body: bytes) -> dict[str, str]:
    return {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


@both_policies
def test_deletes_keys_and_reports_each(s3, bucket):
    put_keys(s3, bucket, ["a", "b", "c", "keep"])
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "never-existed"},
                                                                {"Key": "c"}]})
    assert [d["Key"] for d in resp["Deleted"]] == ["a", "b", "never-existed", "c"]
    assert "Errors" not in resp
    assert keys_in(s3, bucket) == ["keep"]


def test_quiet_mode_reports_only_errors(s3, bucket):
    put_keys(s3, bucket, ["q1", "q2"])
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "q1"}, {"Key": "q2"}], "Quiet": True})
    assert "Deleted" not in resp and "Errors" not in resp
    assert keys_in(s3, bucket) == []
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "ok"}, {"Key": "x" * 1025}], "Quiet": True})
    assert "Deleted" not in resp
    assert [(e["Key"], e["Code"]) for e in resp["Errors"]] == [("x" * 1025, "KeyTooLongError")]


def test_per_key_errors_do_not_stop_the_others(s3, bucket):
    put_keys(s3, bucket, ["one", "two"])
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "one"}, {"Key": "k" * 1100}, {"Key": "two"}]})
    assert [d["Key"] for d in resp["Deleted"]] == ["one", "two"]
    assert [(e["Key"], e["Code"]) for e in resp["Errors"]] == [("k" * 1100, "KeyTooLongError")]
    assert resp["Errors"][0]["Message"]
    assert keys_in(s3, bucket) == []


def test_awkward_key_names(s3, bucket):
    names = ["a&b<c>\"'", " leading and trailing ", "ünï/cödé", "tab\there", "dir/"]
    put_keys(s3, bucket, names)
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in names]})
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted(names)
    assert keys_in(s3, bucket) == []


def test_a_thousand_keys_is_the_limit(cluster, s3, bucket):
    put_keys(s3, bucket, ["k0000", "k0500", "k0999"])
    keys = [f"k{i:04d}" for i in range(1001)]
    status, body = post_delete(cluster, bucket, delete_doc(keys), md5_header(delete_doc(keys)))
    assert status == 400 and xml_code(body) == "MalformedXML"
    assert keys_in(s3, bucket) == ["k0000", "k0500", "k0999"]
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[:1000]], "Quiet": True})
    assert "Errors" not in resp
    assert keys_in(s3, bucket) == []


@pytest.mark.parametrize("body", [
    b"<Delete><Object><Key>a",
    b"<NotDelete><Object><Key>a</Key></Object></NotDelete>",
    b"<Delete></Delete>",
    b"<Delete><Quiet>true</Quiet></Delete>",
    b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
    b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
    b"<Delete><Object><Key>a</Key><Colour>red</Colour></Object></Delete>",
    b"<Delete><Quiet>maybe</Quiet><Object><Key>a</Key></Object></Delete>",
    b"<Delete><Extra/><Object><Key>a</Key></Object></Delete>",
    b'<!DOCTYPE d [<!ENTITY e "a">]><Delete><Object><Key>&e;</Key></Object></Delete>',
])
def test_malformed_documents_delete_nothing(cluster, s3, bucket, body):
    put_keys(s3, bucket, ["a"])
    status, resp = post_delete(cluster, bucket, body, md5_header(body))
    assert status == 400 and xml_code(resp) == "MalformedXML"
    assert keys_in(s3, bucket) == ["a"]


def test_integrity_header_is_required_and_verified(cluster, s3, bucket):
    put_keys(s3, bucket, ["a"])
    body = delete_doc(["a"])
    status, resp = post_delete(cluster, bucket, body, {})
    assert status == 400 and xml_code(resp) == "InvalidRequest"
    status, resp = post_delete(cluster, bucket, body, md5_header(b"something else"))
    assert status == 400 and xml_code(resp) == "BadDigest"
    status, resp = post_delete(cluster, bucket, body, {"Content-MD5": "not base64!"})
    assert status == 400 and xml_code(resp) == "InvalidDigest"
    wrong_crc = base64.b64encode(b"\0\0\0\0").decode()
    status, resp = post_delete(cluster, bucket, body, {"x-amz-checksum-crc32": wrong_crc})
    assert status == 400 and xml_code(resp) == "BadDigest"
    assert keys_in(s3, bucket) == ["a"]
    import zlib

    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    status, resp = post_delete(cluster, bucket, body, {"x-amz-checksum-crc32": crc})
    assert status == 200
    deleted = [d.findtext(f"{NS}Key") for d in ET.fromstring(resp).iter(f"{NS}Deleted")]
    assert deleted == ["a"]
    put_keys(s3, bucket, ["a"])
    status, resp = post_delete(cluster, bucket, body, md5_header(body))
    assert status == 200 and keys_in(s3, bucket) == []


def test_conditional_delete_entries_are_not_implemented(cluster, s3, bucket):
    put_keys(s3, bucket, ["a"])
    body = b'<Delete><Object><Key>a</Key><ETag>"abc"</ETag></Object></Delete>'
    status, resp = post_delete(cluster, bucket, body, md5_header(body))
    assert status == 501 and xml_code(resp) == "NotImplemented"
    assert keys_in(s3, bucket) == ["a"]


def test_missing_bucket(s3):
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=f"missing-{uuid.uuid4().hex[:8]}", Delete={"Objects": [{"Key": "a"}]})
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"


def test_get_with_delete_subresource_is_not_allowed(cluster, s3, bucket):
    path = f"/{bucket}?delete"
    status, resp = raw_request(cluster, "GET", path, signed_headers(cluster, "GET", path, {}))
    assert status == 405 and xml_code(resp) == "MethodNotAllowed"


def test_null_version_delete_in_unversioned_bucket(s3, bucket):
    s3.put_object(Bucket=bucket, Key="n", Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "n", "VersionId": "null"}]})
    assert resp["Deleted"] == [{"Key": "n", "VersionId": "null"}]
    assert keys_in(s3, bucket) == []


@both_policies
def test_versioned_deletes(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="a", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="a", Body=b"two")["VersionId"]
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}]})
    [deleted] = resp["Deleted"]
    marker = deleted["DeleteMarkerVersionId"]
    assert deleted["Key"] == "a" and deleted["DeleteMarker"] is True and marker not in (v1, v2)
    assert "VersionId" not in deleted
    listing = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing["Versions"]] == [v2, v1]
    assert [m["VersionId"] for m in listing["DeleteMarkers"]] == [marker]
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "VersionId": v1}, {"Key": "a", "VersionId": marker}, {"Key": "a", "VersionId": "bogus"}]})
    assert resp["Deleted"][0] == {"Key": "a", "VersionId": v1}
    assert resp["Deleted"][1] == {"Key": "a", "VersionId": marker, "DeleteMarker": True,
                                  "DeleteMarkerVersionId": marker}
    assert [(e["Key"], e["VersionId"], e["Code"]) for e in resp["Errors"]] == [("a", "bogus", "InvalidArgument")]
    # The marker is gone, so v2 is current again; v1 is gone for good.
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"two"
    listing = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in listing["Versions"]] == [v2] and "DeleteMarkers" not in listing
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a", "VersionId": v2}], "Quiet": True})
    assert "Deleted" not in resp and "Errors" not in resp
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)


@both_policies
def test_objects_of_every_size_are_deleted_in_one_request(s3, bucket):
    bodies = {f"obj-{size}": os.urandom(size) for size in SIZES}
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="keep", Body=os.urandom(SIZES[-1]))
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in bodies]})
    assert sorted(d["Key"] for d in resp["Deleted"]) == sorted(bodies) and "Errors" not in resp
    assert keys_in(s3, bucket) == ["keep"]
    for key in bodies:
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key=key)
        assert exc.value.response["Error"]["Code"] == "NoSuchKey"
