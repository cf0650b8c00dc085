"""Who may read without owning: anonymous requests, canned ACLs and policy decisions."""
from __future__ import annotations

import json

import pytest

from gateway.anonymous import (ANONYMOUS, ANONYMOUS_OPS, canned_public_read, check_anonymous_op, is_anonymous,
                               may_locate, may_list, may_read)
from gateway.caller import Caller
from gateway.endpoints import BucketEndpoint, ReadEndpoint
from objstore.errors import AccessDenied, InvalidRequest, NotImplementedOp
from objstore.types import Bucket, ObjectVersion

READ_ALL = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                      "Resource": "arn:aws:s3:::b/pub/*"}]})
LIST = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                  "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": "arn:aws:s3:::b"}]})


def bucket(**kw) -> Bucket:
    return Bucket("b", "alice", 1.0, **kw)


def endpoint(op: str) -> BucketEndpoint:
    """An endpoint naming ``op`` (the check reads only its op and any response overrides)."""
    return BucketEndpoint(op=op, bucket="b")


def version(key="pub/x", **kw) -> ObjectVersion:
    return ObjectVersion("b", key, "v1", 1, "e", 1.0, owner="alice", **kw)


@pytest.mark.parametrize("headers,query,expected", [
    ({}, {}, True),
    ({"Host": "x", "Range": "bytes=0-1"}, {"versionId": "1"}, True),
    ({"Authorization": "AWS4-HMAC-SHA256 ..."}, {}, False),
    ({"authorization": "AWS k:s"}, {}, False),
    ({}, {"X-Amz-Algorithm": "AWS4-HMAC-SHA256"}, False),
    ({}, {"X-Amz-Signature": "00"}, False),
    ({}, {"X-Amz-Credential": "k/2026"}, False),
    ({}, {"Signature": "s", "AWSAccessKeyId": "k"}, False),
    ({}, {"AWSAccessKeyId": "k"}, False),
])
def test_is_anonymous(headers, query, expected):
    assert is_anonymous(headers, query) is expected


@pytest.mark.parametrize("op", ["PutObject", "DeleteObject", "DeleteObjects", "CreateBucket", "DeleteBucket",
                                "ListBuckets", "PutBucketPolicy", "GetBucketPolicy", "PutObjectAcl",
                                "GetObjectAcl", "CopyObject", "CreateMultipartUpload", "UploadPart",
                                "ListObjectVersions", "GetObjectTagging", "HeadBucket"])
def test_anonymous_may_not_write_or_see_anything_else(op):
    with pytest.raises(AccessDenied):
        check_anonymous_op(ANONYMOUS, endpoint(op))
    check_anonymous_op(Caller("alice", ANONYMOUS.auth), endpoint(op))  # a signed caller goes on to its handler


def test_anonymous_reads_go_on_to_their_handler():
    assert ANONYMOUS_OPS == {"GetObject", "HeadObject", "ListObjects", "ListObjectsV2", "GetBucketLocation"}
    for op in ANONYMOUS_OPS:
        check_anonymous_op(ANONYMOUS, endpoint(op))


def test_anonymous_reads_may_not_override_response_headers():
    ep = ReadEndpoint(op="GetObject", bucket="b", key="k", response_headers=(("Content-Type", "text/evil"),))
    with pytest.raises(InvalidRequest):
        check_anonymous_op(ANONYMOUS, ep)
    check_anonymous_op(Caller("alice", ANONYMOUS.auth), ep)


@pytest.mark.parametrize("b,v,by_id,expected", [
    (bucket(), version(), False, False),
    (bucket(), version(public_read=True), False, True),
    (bucket(), version(public_read=True), True, True),  # the object's READ grant covers its versions
    (bucket(access_policy=READ_ALL), version(), False, True),
    (bucket(access_policy=READ_ALL), version(), True, False),  # s3:GetObjectVersion is never granted
    (bucket(access_policy=READ_ALL), version("priv/x"), False, False),
    (bucket(public_read=True), version(), False, False),  # a public-read bucket opens listing only
    (bucket(access_policy=LIST), version(), False, False),
])
def test_may_read(b, v, by_id, expected):
    assert may_read(b, v, by_id) is expected


@pytest.mark.parametrize("b,listable,locatable", [
    (bucket(), False, False),
    (bucket(public_read=True), True, False),
    (bucket(access_policy=LIST), True, True),
    (bucket(access_policy=READ_ALL), False, False),
])
def test_may_list_and_locate(b, listable, locatable):
    assert may_list(b) is listable and may_locate(b) is locatable


@pytest.mark.parametrize("value,is_bucket,expected", [
    (None, False, None), ("public-read", False, True), (" Public-Read ", True, True),
    ("private", False, False), ("private", True, False), ("bucket-owner-full-control", False, False),
])
def test_canned_acls(value, is_bucket, expected):
    assert canned_public_read(value, bucket=is_bucket) is expected


@pytest.mark.parametrize("value,is_bucket", [
    ("public-read-write", False), ("authenticated-read", False), ("aws-exec-read", False),
    ("public-read-write", True), ("authenticated-read", True), ("log-delivery-write", True),
    ("bucket-owner-full-control", True), ("bogus", False),
])
def test_canned_acls_that_open_more_are_not_implemented(value, is_bucket):
    with pytest.raises(NotImplementedOp):
        canned_public_read(value, bucket=is_bucket)
