"""Behaviours real S3 clients depend on, checked against a real cluster with boto3 (and
raw signed requests where boto3 would change what is sent)."""
from __future__ import annotations

import pytest

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
