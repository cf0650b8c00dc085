"""Behaviours real S3 clients depend on, checked against a real cluster with boto3 (and
raw signed requests where boto3 would change what is sent)."""
from __future__ import annotations

import hashlib
import socket
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote

import pytest
from botocore.exceptions import ClientError

from gateway.auth.sign import sign_request
from tests.integration.test_bad_input import raw_request, signed_headers

pytestmark = pytest.mark.integration


# --- headers that ask for nothing objstore could violate ---------------------------------

def test_request_payer_is_accepted(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"paid", RequestPayer="requester")
    got = s3.get_object(Bucket=bucket, Key="k", RequestPayer="requester")
    assert got["Body"].read() == b"paid"
    listed = s3.list_objects_v2(Bucket=bucket, RequestPayer="requester")
    assert [o["Key"] for o in listed["Contents"]] == ["k"]
    s3.copy_object(Bucket=bucket, Key="k2", CopySource={"Bucket": bucket, "Key": "k"}, RequestPayer="requester")
    assert s3.get_object(Bucket=bucket, Key="k2")["Body"].read() == b"paid"


def test_bypass_governance_retention_deletes(s3, bucket):
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.delete_object(Bucket=bucket, Key="a", BypassGovernanceRetention=True)
    out = s3.delete_objects(Bucket=bucket, BypassGovernanceRetention=True,
                            Delete={"Objects": [{"Key": "b"}, {"Key": "c"}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == ["b", "c"] and not out.get("Errors")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_mfa_header_without_mfa_delete_deletes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="a", MFA="123456 789012")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


# --- user metadata bytes round-trip exactly ----------------------------------------------

UTF8_VALUE = "Hello Worldé".encode("utf-8")  # ... C3 A9
LATIN1_VALUE = "Hello Worldé".encode("latin-1")  # ... E9


def _raw(cluster, method: str, path: str, meta: bytes | None = None, extra: dict[str, str] | None = None,
         body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
    """One signed request sent byte for byte; ``meta`` is sent, and signed, as the raw bytes
    of ``x-amz-meta-v`` (boto3 would re-encode it). Returns (status, lower-case raw response
    header names -> raw values, body)."""
    hdrs = {**(extra or {}), "Content-Length": str(len(body))}
    if meta is not None:
        # The signer and the gateway both read a header's bytes through surrogateescape.
        hdrs["x-amz-meta-v"] = meta.decode("utf-8", "surrogateescape")
    bare, _, query = path.partition("?")
    headers = sign_request(cluster.access_key, cluster.secret_key, "us-east-1", method,
                           f"127.0.0.1:{cluster.s3_port}", unquote(bare),
                           dict(parse_qsl(query, keep_blank_values=True)), hdrs, "UNSIGNED-PAYLOAD",
                           datetime.now(timezone.utc))
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Connection: close"]
    lines += [f"{k}: {v}".encode("utf-8", "surrogateescape") for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", cluster.s3_port), timeout=10) as s:
        s.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100 "):  # an interim 100 Continue before the answer
        head, _, rest = rest.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    got = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        got[name.strip().lower()] = value.strip()
    return int(status_line.split(b" ")[1]), got, rest


@pytest.mark.parametrize("value", [UTF8_VALUE, LATIN1_VALUE], ids=["utf-8", "latin-1"])
def test_user_metadata_bytes_round_trip(cluster, s3, bucket, value):
    status, _, body = _raw(cluster, "PUT", f"/{bucket}/k", value, body=b"data")
    assert status == 200, body
    for method in ("GET", "HEAD"):
        status, got, _ = _raw(cluster, method, f"/{bucket}/k")
        assert status == 200 and got[b"x-amz-meta-v"] == value
    status, _, body = _raw(cluster, "PUT", f"/{bucket}/copy", extra={"x-amz-copy-source": f"/{bucket}/k"})
    assert status == 200, body
    assert _raw(cluster, "HEAD", f"/{bucket}/copy")[1][b"x-amz-meta-v"] == value
    status, _, body = _raw(cluster, "PUT", f"/{bucket}/replaced", value, {
        "x-amz-copy-source": f"/{bucket}/k", "x-amz-metadata-directive": "REPLACE"})
    assert status == 200, body
    assert _raw(cluster, "HEAD", f"/{bucket}/replaced")[1][b"x-amz-meta-v"] == value
    status, _, body = _raw(cluster, "POST", f"/{bucket}/multi?uploads", value)
    assert status == 200, body
    upload_id = ET.fromstring(body).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
    etag = s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload_id, PartNumber=1, Body=b"part")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload_id,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert _raw(cluster, "GET", f"/{bucket}/multi")[1][b"x-amz-meta-v"] == value


# --- CreateBucket of a bucket the caller owns --------------------------------------------

def test_recreating_an_owned_bucket_in_us_east_1_succeeds_and_changes_nothing(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="kept", Body=b"still here")
    created = s3.list_buckets()["Buckets"]
    for kw in ({}, {"CreateBucketConfiguration": {"LocationConstraint": "us-east-1"}}):
        r = s3.create_bucket(Bucket=bucket, **kw)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.list_buckets()["Buckets"] == created
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"still here"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_recreating_an_owned_bucket_elsewhere_is_already_owned_by_you():
    from gateway.handlers.bucket import recreating_is_success

    assert recreating_is_success("us-east-1")
    assert not recreating_is_success("eu-west-1")


# --- ListBuckets pagination ----------------------------------------------------------------

def test_list_buckets_pages_by_prefix_and_continuation_token(s3):
    prefix = f"lb-{uuid.uuid4().hex[:8]}-"
    names = [f"{prefix}{i}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    try:
        first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
        assert [b["Name"] for b in first["Buckets"]] == names[:2]
        assert first["Prefix"] == prefix and first["ContinuationToken"]
        second = s3.list_buckets(Prefix=prefix, MaxBuckets=2, ContinuationToken=first["ContinuationToken"])
        assert [b["Name"] for b in second["Buckets"]] == names[2:4]
        last = s3.list_buckets(Prefix=prefix, MaxBuckets=2, ContinuationToken=second["ContinuationToken"])
        assert [b["Name"] for b in last["Buckets"]] == names[4:] and "ContinuationToken" not in last
        pages = s3.get_paginator("list_buckets").paginate(Prefix=prefix, PaginationConfig={"PageSize": 3})
        assert [b["Name"] for page in pages for b in page["Buckets"]] == names
        assert [b["Name"] for b in s3.list_buckets(Prefix=prefix, BucketRegion="us-east-1")["Buckets"]] == names
        assert s3.list_buckets(Prefix=prefix, BucketRegion="eu-west-1")["Buckets"] == []
        everything = s3.list_buckets()
        assert set(names) <= {b["Name"] for b in everything["Buckets"]}
        assert "ContinuationToken" not in everything and "Prefix" not in everything
    finally:
        for name in names:
            s3.delete_bucket(Bucket=name)


@pytest.mark.parametrize("query", ["max-buckets=0", "max-buckets=10001", "max-buckets=x", "continuation-token=nope"])
def test_list_buckets_refuses_malformed_paging(cluster, query):
    status, _, body = _raw(cluster, "GET", "/?" + query)
    assert status == 400 and b"<Code>InvalidArgument</Code>" in body


# --- ListObjectsV2: empty continuation token, encoding-type=url ---------------------------

def test_empty_continuation_token_is_the_first_page(cluster, s3, bucket):
    for key in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    status, _, body = _raw(cluster, "GET", f"/{bucket}?list-type=2&continuation-token=")
    assert status == 200, body
    keys = [k.text for k in ET.fromstring(body).iter(f"{NS}Key")]
    assert keys == ["a", "b"]
    status, _, body = _raw(cluster, "GET", f"/{bucket}?list-type=2&continuation-token=&start-after=a")
    assert status == 200 and [k.text for k in ET.fromstring(body).iter(f"{NS}Key")] == ["b"]


NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
ODD_KEYS = ["\nline", "a b/c d", "plus+sign", "caf\u00e9/\u00fcber", "tilde~star*", "pct%25", "amp&lt"]


def test_url_encoded_listing_names_are_encoded_as_s3_encodes_them(cluster, s3, bucket):
    for key in ODD_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    # What S3 sends (form encoding: space as +, only A-Za-z0-9 -_.* and / left as they are).
    status, _, body = _raw(cluster, "GET", f"/{bucket}?list-type=2&encoding-type=url&start-after=%0A")
    assert status == 200, body
    tree = ET.fromstring(body)
    assert [k.text for k in tree.iter(f"{NS}Key")] == [
        "%0Aline", "a+b/c+d", "amp%26lt", "caf%C3%A9/%C3%BCber", "pct%2525", "plus%2Bsign", "tilde%7Estar*"]
    assert tree.findtext(f"{NS}StartAfter") == "%0A"
    status, _, body = _raw(cluster, "GET", f"/{bucket}?list-type=2&encoding-type=url&prefix=a%20&delimiter=%20")
    tree = ET.fromstring(body)
    assert (tree.findtext(f"{NS}Prefix"), tree.findtext(f"{NS}Delimiter")) == ("a+", "+")
    assert [p.text for p in tree.iter(f"{NS}Prefix")][1:] == ["a+b/c+"]
    # What botocore makes of it (it asks for encoding-type=url and decodes).
    for prefix in ("\n", "a b", "plus+", "caf\u00e9", ""):
        got = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        assert got.get("Prefix", "") == prefix
        expected = sorted(k for k in ODD_KEYS if k.startswith(prefix) and "/" not in k[len(prefix):])
        assert [o["Key"] for o in got.get("Contents", [])] == expected
        rolled = sorted({k[: k.index("/", len(prefix)) + 1] for k in ODD_KEYS
                         if k.startswith(prefix) and "/" in k[len(prefix):]})
        assert [p["Prefix"] for p in got.get("CommonPrefixes", [])] == rolled
    got = s3.list_objects_v2(Bucket=bucket, StartAfter="a b/c d")
    assert got["StartAfter"] == "a b/c d" and got["Contents"][0]["Key"] == "amp&lt"


# --- Expect --------------------------------------------------------------------------------

@pytest.mark.parametrize("expect", ["something-else", "200-ok", "100-Continue"])
def test_expect_values_other_than_100_continue_are_ignored(cluster, s3, bucket, expect):
    status, _, body = _raw(cluster, "PUT", f"/{bucket}/k", extra={"Expect": expect}, body=b"expected")
    assert status == 200, body
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"expected"
    status, _, body = _raw(cluster, "GET", f"/{bucket}/k", extra={"Expect": expect})
    assert status == 200 and body == b"expected"


def test_expect_100_continue_gets_an_interim_response(cluster, bucket):
    headers = signed_headers(cluster, "PUT", f"/{bucket}/k", {"Content-Length": "4", "Expect": "100-continue"})
    head = [f"PUT /{bucket}/k HTTP/1.1", f"Host: 127.0.0.1:{cluster.s3_port}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    with socket.create_connection(("127.0.0.1", cluster.s3_port), timeout=10) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"body")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200")


# --- Content-Encoding: aws-chunked on a body that is not chunk-signed ----------------------

@pytest.mark.parametrize("sent,stored", [("aws-chunked,gzip", "gzip"), ("aws-chunked", None),
                                         ("gzip, aws-chunked", "gzip"), ("AWS-Chunked", None)])
@pytest.mark.parametrize("payload", ["hash", "UNSIGNED-PAYLOAD"])
def test_aws_chunked_token_is_removed_from_a_plain_body(cluster, s3, bucket, sent, stored, payload):
    body = b"not chunked at all"
    path = f"/{bucket}/k"
    content_hash = hashlib.sha256(body).hexdigest() if payload == "hash" else payload
    headers = signed_headers(cluster, "PUT", path, {"Content-Length": str(len(body)), "Content-Encoding": sent},
                             payload_hash=content_hash)
    status, resp = raw_request(cluster, "PUT", path, headers, body)
    assert status == 200, resp
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == body
    assert got.get("ContentEncoding") == stored
    assert s3.head_object(Bucket=bucket, Key="k").get("ContentEncoding") == stored


# --- ACLs ------------------------------------------------------------------------------------

def _owner_only(acl: dict) -> bool:
    owner = acl["Owner"]
    return acl["Grants"] == [{"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"],
                                          "DisplayName": owner["DisplayName"]}, "Permission": "FULL_CONTROL"}]


def test_get_acls_answer_the_owners_full_control(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    owner = s3.list_buckets()["Owner"]
    for acl in (s3.get_bucket_acl(Bucket=bucket), s3.get_object_acl(Bucket=bucket, Key="k")):
        assert acl["Owner"] == owner and _owner_only(acl)
    with pytest.raises(ClientError) as e:
        s3.get_object_acl(Bucket=bucket, Key="missing")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"


def test_put_acls_that_keep_access_private_succeed(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="bucket-owner-full-control")
    policy = s3.get_object_acl(Bucket=bucket, Key="k")
    policy.pop("ResponseMetadata")
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=policy)
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    assert _owner_only(s3.get_object_acl(Bucket=bucket, Key="k"))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


@pytest.mark.parametrize("kind", ["canned", "grant-header", "all-users-xml", "other-user-xml"])
@pytest.mark.parametrize("target", ["bucket", "object"])
def test_acls_that_would_open_access_are_not_implemented(s3, bucket, kind, target):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    owner = s3.list_buckets()["Owner"]
    grantee = {"all-users-xml": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
               "other-user-xml": {"Type": "CanonicalUser", "ID": "someone-else"}}.get(kind)
    kw = {"canned": {"ACL": "public-read"}, "grant-header": {"GrantRead": "id=someone-else"}}.get(kind) or {
        "AccessControlPolicy": {"Owner": owner, "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
            {"Grantee": grantee, "Permission": "READ"}]}}
    with pytest.raises(ClientError) as e:
        if target == "bucket":
            s3.put_bucket_acl(Bucket=bucket, **kw)
        else:
            s3.put_object_acl(Bucket=bucket, Key="k", **kw)
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    assert _owner_only(s3.get_object_acl(Bucket=bucket, Key="k"))
