"""Conditional PutObject (If-None-Match: *, If-Match: <etag>) through boto3 against a real cluster."""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.conftest import SIZES, both_policies

pytestmark = pytest.mark.integration


def code_and_status(exc: pytest.ExceptionInfo) -> tuple[str, int]:
    r = exc.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]


def body_of(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@both_policies
def test_if_none_match_star_creates_only_once(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert code_and_status(exc) == ("PreconditionFailed", 412)
    assert body_of(s3, bucket, "once") == b"first"


def test_if_none_match_with_an_etag_is_not_implemented(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"y", IfNoneMatch=etag)
    assert code_and_status(exc) == ("NotImplemented", 501)
    assert body_of(s3, bucket, "k") == b"x"


@both_policies
def test_if_match_replaces_only_the_expected_object(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="doc", Body=b"v1")["ETag"]
    assert etag == f'"{hashlib.md5(b"v1").hexdigest()}"'
    new = s3.put_object(Bucket=bucket, Key="doc", Body=b"v2", IfMatch=etag)["ETag"]
    with pytest.raises(ClientError) as exc:  # the old ETag no longer matches
        s3.put_object(Bucket=bucket, Key="doc", Body=b"v3", IfMatch=etag)
    assert code_and_status(exc) == ("PreconditionFailed", 412)
    assert body_of(s3, bucket, "doc") == b"v2"
    s3.put_object(Bucket=bucket, Key="doc", Body=b"v3", IfMatch=new.strip('"'))  # unquoted works too
    assert body_of(s3, bucket, "doc") == b"v3"


def test_if_match_on_a_missing_key_is_no_such_key(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert code_and_status(exc) == ("NoSuchKey", 404)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@both_policies
def test_conditions_see_a_delete_marker_as_no_object(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    s3.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfMatch="*")
    assert code_and_status(exc) == ("NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="k", Body=b"new", IfNoneMatch="*")
    assert body_of(s3, bucket, "k") == b"new"


@both_policies
def test_concurrent_create_only_writes_have_exactly_one_winner(s3, bucket):
    def attempt(i: int) -> str:
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=f"writer-{i}".encode(), IfNoneMatch="*")
            return f"writer-{i}"
        except ClientError as err:
            assert err.response["Error"]["Code"] == "PreconditionFailed"
            return ""

    with ThreadPoolExecutor(8) as pool:
        winners = [w for w in pool.map(attempt, range(8)) if w]
    assert len(winners) == 1
    assert body_of(s3, bucket, "race") == winners[0].encode()


@both_policies
def test_if_match_replaces_objects_of_every_size(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="doc", Body=b"start", IfNoneMatch="*")["ETag"]
    for size in SIZES:
        body = os.urandom(size)
        new = s3.put_object(Bucket=bucket, Key="doc", Body=body, IfMatch=etag)["ETag"]
        assert new == f'"{hashlib.md5(body).hexdigest()}"'
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="doc", Body=b"late", IfMatch=etag)
        assert code_and_status(exc) == ("PreconditionFailed", 412)
        assert body_of(s3, bucket, "doc") == body
        etag = new
