"""The bucket policy subset: what parses, what is MalformedPolicy, and what it grants."""
from __future__ import annotations

import json

import pytest

from objstore import bucket_policy as bp
from objstore.errors import MalformedPolicy

B = "site"


def doc(*statements, **top) -> str:
    return json.dumps({"Version": "2012-10-17", **top, "Statement": list(statements)})


def allow(action="s3:GetObject", resource=f"arn:aws:s3:::{B}/*", principal="*", **extra) -> dict:
    return {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": resource, **extra}


def mc_download_policy(bucket: str) -> str:
    """The JSON MinIO's `mc anonymous set download ALIAS/bucket` puts (minio-go's read-only
    bucket policy: common and read-only bucket actions on the bucket, GetObject on bucket/*)."""
    return json.dumps({
        "Statement": [
            {"Action": ["s3:GetBucketLocation", "s3:ListBucket"], "Effect": "Allow",
             "Principal": {"AWS": ["*"]}, "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Action": ["s3:GetObject"], "Effect": "Allow", "Principal": {"AWS": ["*"]},
             "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        ],
        "Version": "2012-10-17",
    })


MC_DOWNLOAD = mc_download_policy(B)


@pytest.mark.parametrize("text,action,key,expected", [
    (doc(allow()), "s3:GetObject", "a/b.html", True),
    (doc(allow()), "s3:ListBucket", None, False),
    (doc(allow()), "s3:GetObject", None, False),
    (doc(allow(principal={"AWS": "*"})), "s3:GetObject", "x", True),
    (doc(allow(principal={"AWS": ["*"]}, action=["s3:GetObject"])), "s3:GetObject", "x", True),
    (doc(allow(action="S3:getobject")), "s3:GetObject", "x", True),
    (doc(allow(resource=f"arn:aws:s3:::{B}/public/*")), "s3:GetObject", "public/index.html", True),
    (doc(allow(resource=f"arn:aws:s3:::{B}/public/*")), "s3:GetObject", "private/x", False),
    (doc(allow(resource=f"arn:aws:s3:::{B}/public/*")), "s3:GetObject", "public", False),
    (doc(allow(resource=f"arn:aws:s3:::{B}/one.txt")), "s3:GetObject", "one.txt", True),
    (doc(allow(resource=f"arn:aws:s3:::{B}/one.txt")), "s3:GetObject", "one.txt2", False),
    (doc(allow(resource=[f"arn:aws:s3:::{B}/a/*", f"arn:aws:s3:::{B}/b/*"])), "s3:GetObject", "b/1", True),
    (doc(allow(action="s3:ListBucket", resource=f"arn:aws:s3:::{B}")), "s3:ListBucket", None, True),
    (doc(allow(action="s3:ListBucket", resource=f"arn:aws:s3:::{B}")), "s3:GetObject", "x", False),
    (doc(allow(action=["s3:GetObject", "s3:ListBucket"], resource=[f"arn:aws:s3:::{B}", f"arn:aws:s3:::{B}/*"])),
     "s3:ListBucket", None, True),
    (MC_DOWNLOAD, "s3:GetObject", "any/key", True),
    (MC_DOWNLOAD, "s3:ListBucket", None, True),
    (MC_DOWNLOAD, "s3:GetBucketLocation", None, True),
    (json.dumps({"Statement": allow()}), "s3:GetObject", "x", True),  # one statement, no Version
    (doc(allow(), Id="p1"), "s3:GetObject", "x", True),
    (json.dumps({"Version": "2008-10-17", "Statement": [dict(allow(), Sid="")]}), "s3:GetObject", "x", True),
])
def test_policy_grants(text, action, key, expected):
    assert bp.parse(text, B).allows(action, key) is expected


@pytest.mark.parametrize("text", [
    "not json",
    "[]",
    json.dumps({"Version": "2012-10-17"}),
    json.dumps({"Version": "2012-10-17", "Statement": []}),
    json.dumps({"Version": "2001-01-01", "Statement": [allow()]}),
    doc(allow(), Extra=1),
    doc(dict(allow(), Effect="Deny")),
    doc(allow(), dict(allow(), Effect="Deny")),  # one bad statement refuses the whole policy
    doc(dict(allow(), Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})),
    doc({k: v for k, v in dict(allow(), NotPrincipal="*").items() if k != "Principal"}),
    doc({k: v for k, v in dict(allow(), NotAction="s3:PutObject").items() if k != "Action"}),
    doc({k: v for k, v in dict(allow(), NotResource=f"arn:aws:s3:::{B}/x").items() if k != "Resource"}),
    doc(allow(action="s3:PutObject")),
    doc(allow(action="s3:*")),
    doc(allow(action=["s3:GetObject", "s3:DeleteObject"])),
    doc(allow(action=[])),
    doc(allow(principal={"AWS": "arn:aws:iam::123456789012:root"})),
    doc(allow(principal={"AWS": ["*", "arn:aws:iam::1:root"]})),
    doc(allow(principal={"CanonicalUser": "abc"})),
    doc(allow(resource="arn:aws:s3:::other/*")),
    doc(allow(resource=[f"arn:aws:s3:::{B}/*", "arn:aws:s3:::other/*"])),
    doc(allow(resource="arn:aws:s3:::*")),
    doc(allow(resource=f"arn:aws:s3:::{B}/a*b")),
    doc(allow(resource=f"arn:aws:s3:::{B}/a?")),
    doc(allow(resource=f"arn:aws:s3:::{B}/")),
    doc(allow(resource="*")),
    doc(allow(resource=f"arn:aws:s3:::{B}")),  # GetObject does not apply to the bucket
    doc(allow(action="s3:ListBucket")),  # ListBucket does not apply to objects
    doc({k: v for k, v in allow().items() if k != "Effect"}),
    doc(dict(allow(), Sid=3)),
    json.dumps({"Statement": [allow()], "Version": "2012-10-17", "pad": "x" * bp.MAX_POLICY_BYTES}),
])
def test_malformed_policies_are_refused(text):
    with pytest.raises(MalformedPolicy) as e:
        bp.parse(text, B)
    assert e.value.status == 400 and e.value.code == "MalformedPolicy"


def test_stored_policy_grants_are_cached_and_empty_means_none():
    assert bp.grants_of("", B) is bp.NO_GRANTS
    assert not bp.NO_GRANTS.allows(bp.GET_OBJECT, "x")
    assert bp.grants_of(MC_DOWNLOAD, B) is bp.grants_of(MC_DOWNLOAD, B)
