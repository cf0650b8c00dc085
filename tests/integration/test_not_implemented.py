"""What objstore does not support is answered 501 NotImplemented (S3 XML) and changes nothing.

Every request is signed for real and sent raw, so headers boto3 would refuse over plain
HTTP (SSE-C) are sent too. After each one, what a client can see of the test bucket (its
keys, and the bytes and metadata of its one object) must equal the snapshot taken before
the first, and a bucket a refused CreateBucket named must not exist.
"""
from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from tests.integration.test_bad_input import raw_request, signed_headers, xml_code

pytestmark = pytest.mark.integration

SSE_C = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "x-amz-server-side-encryption-customer-key-MD5": "ZjQ2NzcyZjM4ZDM2ZTE3Mg==",
}
COPY_SSE_C = {k.replace("x-amz-", "x-amz-copy-source-"): v for k, v in SSE_C.items()}
BUCKET_SUBRESOURCES = [
    "policy", "lifecycle", "cors", "website", "encryption", "object-lock", "replication", "logging",
    "notification", "ownershipControls", "publicAccessBlock", "requestPayment", "accelerate", "analytics",
    "inventory", "metrics", "intelligent-tiering", "policyStatus",
]
ALL_USERS_ACL = (
    b'<AccessControlPolicy><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    b' xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>'
    b"<Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>"
)
OBJECT_WRITE_HEADERS = [
    SSE_C,
    {"x-amz-server-side-encryption": "AES256"},
    {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-aws-kms-key-id": "k"},
    {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z"},
    {"x-amz-object-lock-legal-hold": "ON"},
    {"x-amz-website-redirect-location": "/elsewhere"},
    {"x-amz-acl": "public-read"},
    {"x-amz-acl": "authenticated-read"},
    {"x-amz-grant-read": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'},
    {"x-amz-grant-full-control": "id=someone"},
    {"x-amz-grant-write-acp": "id=someone"},
    {"x-amz-storage-class": "GLACIER"},
    {"x-amz-storage-class": "REDUCED_REDUNDANCY"},
]


def _cases() -> list:
    cases = []
    for sub in BUCKET_SUBRESOURCES:
        cases.append(pytest.param("GET", "/{b}?" + sub, {}, b"", id=f"GET-bucket-{sub}"))
        cases.append(pytest.param("PUT", "/{b}?" + sub, {}, b"<Configuration/>", id=f"PUT-bucket-{sub}"))
        cases.append(pytest.param("DELETE", "/{b}?" + sub, {}, b"", id=f"DELETE-bucket-{sub}"))
    form = (b"--XX\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nposted\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\ndata\r\n--XX--\r\n")
    cases.append(pytest.param("POST", "/{b}", {"Content-Type": "multipart/form-data; boundary=XX"}, form,
                              id="POST-object-upload"))
    for sub in ("retention", "legal-hold"):
        cases.append(pytest.param("GET", "/{b}/existing?" + sub, {}, b"", id=f"GET-object-{sub}"))
        cases.append(pytest.param("PUT", "/{b}/existing?" + sub, {}, b"<Configuration/>", id=f"PUT-object-{sub}"))
    cases += [
        # ACLs other than the owner's FULL_CONTROL (which is the only one objstore answers)
        pytest.param("PUT", "/{b}?acl", {"x-amz-acl": "public-read"}, b"", id="PutBucketAcl-public-read"),
        pytest.param("PUT", "/{b}?acl", {"x-amz-grant-read": "id=someone"}, b"", id="PutBucketAcl-grant"),
        pytest.param("PUT", "/{b}?acl", {}, ALL_USERS_ACL, id="PutBucketAcl-all-users-xml"),
        pytest.param("PUT", "/{b}/existing?acl", {"x-amz-acl": "public-read"}, b"", id="PutObjectAcl-public-read"),
        pytest.param("PUT", "/{b}/existing?acl", {"x-amz-grant-full-control": "id=someone"}, b"",
                     id="PutObjectAcl-grant"),
        pytest.param("PUT", "/{b}/existing?acl", {}, ALL_USERS_ACL, id="PutObjectAcl-all-users-xml"),
        pytest.param("GET", "/{b}/existing?torrent", {}, b"", id="GET-object-torrent"),
        pytest.param("GET", "/{b}/existing?attributes", {"x-amz-object-attributes": "ETag"}, b"",
                     id="GetObjectAttributes"),
        pytest.param("POST", "/{b}/existing?restore", {}, b"<RestoreRequest><Days>1</Days></RestoreRequest>",
                     id="RestoreObject"),
        pytest.param("POST", "/{b}/existing?select&select-type=2", {},
                     b"<SelectObjectContentRequest><Expression>select * from s3object</Expression>"
                     b"</SelectObjectContentRequest>", id="SelectObjectContent"),
    ]
    for i, h in enumerate(OBJECT_WRITE_HEADERS):
        name = next(iter(h)) + "=" + next(iter(h.values()))[:20]
        cases.append(pytest.param("PUT", "/{b}/new-object", h, b"new body", id=f"PutObject-{name}"))
        cases.append(pytest.param("PUT", "/{b}/copied", {"x-amz-copy-source": "/{b}/existing", **h}, b"",
                                  id=f"CopyObject-{name}"))
    cases += [
        pytest.param("PUT", "/{b}/existing", {"x-amz-acl": "public-read"}, b"overwritten",
                     id="PutObject-existing-public-read"),
        pytest.param("PUT", "/{b}/copied", {"x-amz-copy-source": "/{b}/existing", **COPY_SSE_C}, b"",
                     id="CopyObject-copy-source-SSE-C"),
        pytest.param("PUT", "/{b}/copied", {"x-amz-copy-source": "/{b}/existing", "x-amz-copy-source-range": "bytes=0-1"},
                     b"", id="CopyObject-copy-source-range"),
        pytest.param("GET", "/{b}/existing", SSE_C, b"", id="GetObject-SSE-C"),
        pytest.param("HEAD", "/{b}/existing", SSE_C, b"", id="HeadObject-SSE-C"),
        pytest.param("PUT", "/{new}", {"x-amz-acl": "public-read"}, b"", id="CreateBucket-public-read"),
        pytest.param("PUT", "/{new}", {"x-amz-bucket-object-lock-enabled": "true"}, b"", id="CreateBucket-object-lock"),
        pytest.param("PUT", "/{new}", {"x-amz-grant-full-control": "id=someone"}, b"", id="CreateBucket-grant"),
        pytest.param("PUT", "/{new}", {"x-amz-object-ownership": "ObjectWriter"}, b"", id="CreateBucket-ownership"),
    ]
    return cases


@pytest.fixture(scope="module")
def ni_bucket(s3):
    name = f"ni-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="existing", Body=b"original", ContentType="text/plain", Metadata={"m": "1"})
    yield name
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


def snapshot(s3, bucket: str) -> tuple:
    keys = [(o["Key"], o["ETag"], o["Size"]) for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    got = s3.get_object(Bucket=bucket, Key="existing")
    return keys, got["Body"].read(), got["ContentType"], got["Metadata"], got["ETag"]


@pytest.fixture(scope="module")
def baseline(s3, ni_bucket) -> tuple:
    """What the test bucket looks like before any case (every case must leave it so)."""
    return snapshot(s3, ni_bucket)


@pytest.mark.parametrize("method,path,headers,body", _cases())
def test_unsupported_request_is_501_and_changes_nothing(cluster, s3, ni_bucket, baseline, method, path, headers,
                                                        body):
    new_bucket = f"ni-new-{uuid.uuid4().hex[:10]}"
    path = path.format(b=ni_bucket, new=new_bucket)
    headers = {k: v.format(b=ni_bucket) for k, v in headers.items()}
    h = signed_headers(cluster, method, path, {**headers, "Content-Length": str(len(body))})
    status, resp = raw_request(cluster, method, path, h, body)
    assert status == 501
    if method != "HEAD":
        assert xml_code(resp) == "NotImplemented"
    assert snapshot(s3, ni_bucket) == baseline
    if new_bucket in path:
        with pytest.raises(ClientError):
            s3.head_bucket(Bucket=new_bucket)


def test_equivalent_acl_and_storage_class_are_accepted(s3, ni_bucket, baseline):
    s3.put_object(Bucket=ni_bucket, Key="private", Body=b"p", ACL="private", StorageClass="STANDARD")
    s3.put_object(Bucket=ni_bucket, Key="owner-full", Body=b"o", ACL="bucket-owner-full-control")
    assert s3.get_object(Bucket=ni_bucket, Key="private")["Body"].read() == b"p"
    s3.copy_object(Bucket=ni_bucket, Key="private-copy", CopySource={"Bucket": ni_bucket, "Key": "private"},
                   ACL="private")
    name = f"ni-priv-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ACL="private", ObjectOwnership="BucketOwnerEnforced")
    s3.delete_bucket(Bucket=name)
    for key in ("private", "owner-full", "private-copy"):
        s3.delete_object(Bucket=ni_bucket, Key=key)


def test_not_implemented_error_document(cluster, ni_bucket):
    path = f"/{ni_bucket}/x"
    h = signed_headers(cluster, "PUT", path, {"x-amz-acl": "public-read", "Content-Length": "1"})
    status, resp = raw_request(cluster, "PUT", path, h, b"x")
    assert status == 501 and b"<Code>NotImplemented</Code>" in resp and b"<RequestId>" in resp
    assert b"x-amz-acl" in resp  # the message names what is not supported
