"""Anonymous reads against a real cluster: bucket policies, canned ACLs, and everything an
unsigned request must still be refused.

Policies are put with the real AWS CLI (``aws s3api put-bucket-policy``) and with boto3;
anonymous requests are plain ``curl`` or urllib requests with no Authorization header.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from objstore.types import Credential
from tests.integration.conftest import make_s3
from tests.integration.internals import ClusterInternals
from tests.integration.test_tools_aws_cli import AwsCli
from tests.unit.test_bucket_policy import mc_download_policy

pytestmark = pytest.mark.integration

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def anon(cluster, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One unsigned request; (status, body)."""
    req = urllib.request.Request(cluster.endpoint + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def code_of(body: bytes) -> str | None:
    return ET.fromstring(body).findtext("Code") if body else None


def curl(cluster, path: str) -> tuple[int, bytes]:
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl is not installed")
    out = subprocess.run([binary, "-s", "-o", "-", "-w", "\n%{http_code}", cluster.endpoint + path],
                         capture_output=True, timeout=30, check=True).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


def public_read_policy(bucket: str, resource: str = "*") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/{resource}"}]})


def error_code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


@pytest.fixture
def other_bucket(s3):
    name = f"other-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="secret.txt", Body=b"not for you")
    yield name
    s3.delete_bucket_policy(Bucket=name)
    s3.delete_object(Bucket=name, Key="secret.txt")
    s3.delete_bucket(Bucket=name)


def test_aws_cli_policy_opens_objects_to_curl_and_delete_revokes(cluster, s3, bucket, other_bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"<h1>hello</h1>", ContentType="text/html")
    assert curl(cluster, f"/{bucket}/index.html")[0] == 403  # private until a policy says otherwise
    aws = AwsCli(cluster, tmp_path / "home")
    aws("s3api", "put-bucket-policy", "--bucket", bucket, "--policy", public_read_policy(bucket))
    got = json.loads(aws("s3api", "get-bucket-policy", "--bucket", bucket).stdout)
    assert json.loads(got["Policy"]) == json.loads(public_read_policy(bucket))

    assert curl(cluster, f"/{bucket}/index.html") == (200, b"<h1>hello</h1>")
    status, _ = anon(cluster, "HEAD", f"/{bucket}/index.html")
    assert status == 200
    status, body = curl(cluster, f"/{other_bucket}/secret.txt")
    assert status == 403 and code_of(body) == "AccessDenied"
    status, body = anon(cluster, "GET", f"/{bucket}/missing")
    assert status == 403 and code_of(body) == "AccessDenied"  # no s3:ListBucket: existence stays hidden
    status, body = anon(cluster, "GET", f"/{bucket}")
    assert status == 403 and code_of(body) == "AccessDenied"  # s3:GetObject does not open listing

    aws("s3api", "delete-bucket-policy", "--bucket", bucket)
    status, body = curl(cluster, f"/{bucket}/index.html")
    assert status == 403 and code_of(body) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(e.value) == "NoSuchBucketPolicy"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_prefix_policy_opens_only_that_prefix(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="public/a.txt", Body=b"a")
    s3.put_object(Bucket=bucket, Key="private/b.txt", Body=b"b")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket, "public/*"))
    assert anon(cluster, "GET", f"/{bucket}/public/a.txt") == (200, b"a")
    assert anon(cluster, "GET", f"/{bucket}/private/b.txt")[0] == 403
    s3.delete_bucket_policy(Bucket=bucket)


def test_mc_anonymous_download_policy_is_accepted_and_honoured(cluster, s3, bucket):
    mc_download = mc_download_policy(bucket)  # what `mc anonymous set download` puts
    s3.put_object(Bucket=bucket, Key="dir/file.bin", Body=b"\x00\x01")
    s3.put_bucket_policy(Bucket=bucket, Policy=mc_download)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(mc_download)
    assert anon(cluster, "GET", f"/{bucket}/dir/file.bin") == (200, b"\x00\x01")
    status, body = anon(cluster, "GET", f"/{bucket}?list-type=2")
    assert status == 200 and b"<Key>dir/file.bin</Key>" in body
    status, body = anon(cluster, "GET", f"/{bucket}?location")
    assert status == 200 and b"LocationConstraint" in body
    status, body = anon(cluster, "GET", f"/{bucket}/nope")
    assert status == 404 and code_of(body) == "NoSuchKey"  # s3:ListBucket: a missing key may be told
    s3.delete_bucket_policy(Bucket=bucket)
    assert anon(cluster, "GET", f"/{bucket}?list-type=2")[0] == 403


def test_malformed_policy_for_deny_and_nothing_stored(cluster, s3, bucket):
    deny = json.loads(public_read_policy(bucket))
    deny["Statement"][0]["Effect"] = "Deny"
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    bad = [
        deny,
        {"Statement": [json.loads(public_read_policy(bucket))["Statement"][0], deny["Statement"][0]]},
        {"Statement": [{**deny["Statement"][0], "Effect": "Allow",
                        "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]},
        {"Statement": [{**deny["Statement"][0], "Effect": "Allow", "Action": "s3:PutObject"}]},
        {"Statement": [{**deny["Statement"][0], "Effect": "Allow", "Resource": f"arn:aws:s3:::not-{bucket}/*"}]},
    ]
    for policy in bad:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        assert error_code(e.value) == "MalformedPolicy"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(public_read_policy(bucket))
    s3.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    assert error_code(e.value) == "MalformedPolicy"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(e.value) == "NoSuchBucketPolicy"


def test_public_read_object_acl_and_private_revokes(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"open", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="priv.txt", Body=b"closed")
    assert curl(cluster, f"/{bucket}/pub.txt") == (200, b"open")
    assert anon(cluster, "GET", f"/{bucket}/priv.txt")[0] == 403
    acl = s3.get_object_acl(Bucket=bucket, Key="pub.txt")
    owner = s3.list_objects(Bucket=bucket, Prefix="pub.txt")["Contents"][0].get("Owner", acl["Owner"])["ID"]
    assert acl["Owner"]["ID"] == owner
    assert [(g["Grantee"]["Type"], g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"])
            for g in acl["Grants"]] == [("CanonicalUser", owner, "FULL_CONTROL"), ("Group", ALL_USERS, "READ")]
    assert [g["Permission"] for g in s3.get_object_acl(Bucket=bucket, Key="priv.txt")["Grants"]] == ["FULL_CONTROL"]

    s3.put_object_acl(Bucket=bucket, Key="pub.txt", ACL="private")
    status, body = anon(cluster, "GET", f"/{bucket}/pub.txt")
    assert status == 403 and code_of(body) == "AccessDenied"
    assert [g["Permission"] for g in s3.get_object_acl(Bucket=bucket, Key="pub.txt")["Grants"]] == ["FULL_CONTROL"]
    s3.put_object_acl(Bucket=bucket, Key="priv.txt", ACL="public-read")
    assert anon(cluster, "GET", f"/{bucket}/priv.txt") == (200, b"closed")
    # Overwriting the key makes a new, private object.
    s3.put_object(Bucket=bucket, Key="priv.txt", Body=b"replaced")
    assert anon(cluster, "GET", f"/{bucket}/priv.txt")[0] == 403


def test_owner_only_acl_document_revokes_and_bucket_owner_acls_are_private(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"open", ACL="public-read")
    public = s3.get_object_acl(Bucket=bucket, Key="pub.txt")
    owner_only = {"Owner": public["Owner"],
                  "Grants": [g for g in public["Grants"] if g["Permission"] == "FULL_CONTROL"]}
    s3.put_object_acl(Bucket=bucket, Key="pub.txt", AccessControlPolicy=owner_only)
    assert anon(cluster, "GET", f"/{bucket}/pub.txt")[0] == 403
    assert [g["Permission"] for g in s3.get_object_acl(Bucket=bucket, Key="pub.txt")["Grants"]] == ["FULL_CONTROL"]
    s3.put_object_acl(Bucket=bucket, Key="pub.txt", ACL="public-read")
    assert anon(cluster, "GET", f"/{bucket}/pub.txt") == (200, b"open")
    s3.put_object_acl(Bucket=bucket, Key="pub.txt", ACL="bucket-owner-read")
    assert anon(cluster, "GET", f"/{bucket}/pub.txt")[0] == 403


def test_public_read_bucket_is_listable_but_its_objects_are_not(cluster, s3):
    name = f"pubbucket-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ACL="public-read")
    try:
        s3.put_object(Bucket=name, Key="a.txt", Body=b"a")
        for query in ("", "?list-type=2"):
            status, body = anon(cluster, "GET", f"/{name}{query}")
            assert status == 200 and b"<Key>a.txt</Key>" in body
        status, body = anon(cluster, "GET", f"/{name}/a.txt")
        assert status == 403 and code_of(body) == "AccessDenied"
        grants = s3.get_bucket_acl(Bucket=name)["Grants"]
        assert {g["Permission"] for g in grants} == {"FULL_CONTROL", "READ"}
        assert [g["Grantee"]["URI"] for g in grants if g["Permission"] == "READ"] == [ALL_USERS]
        s3.put_bucket_acl(Bucket=name, ACL="private")
        assert anon(cluster, "GET", f"/{name}")[0] == 403
        assert [g["Permission"] for g in s3.get_bucket_acl(Bucket=name)["Grants"]] == ["FULL_CONTROL"]
        s3.put_bucket_acl(Bucket=name, ACL="public-read")
        assert anon(cluster, "GET", f"/{name}?list-type=2")[0] == 200
    finally:
        s3.delete_object(Bucket=name, Key="a.txt")
        s3.delete_bucket(Bucket=name)


def test_acls_that_open_more_stay_not_implemented(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    for call in (lambda: s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read-write"),
                 lambda: s3.put_object_acl(Bucket=bucket, Key="k", ACL="authenticated-read"),
                 lambda: s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write"),
                 lambda: s3.put_object(Bucket=bucket, Key="k2", Body=b"x", ACL="authenticated-read")):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert [g["Permission"] for g in s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]] == ["FULL_CONTROL"]


def test_anonymous_writes_and_everything_else_are_always_denied(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"keep", ACL="public-read")
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    attempts = [
        ("PUT", f"/{bucket}/k", b"overwrite"), ("PUT", f"/{bucket}/new", b"new"), ("DELETE", f"/{bucket}/k", None),
        ("DELETE", f"/{bucket}", None), ("PUT", f"/{bucket}?policy", b"{}"), ("GET", f"/{bucket}?policy", None),
        ("DELETE", f"/{bucket}?policy", None), ("GET", f"/{bucket}?acl", None), ("PUT", f"/{bucket}/k?acl", b""),
        ("GET", f"/{bucket}/k?acl", None), ("GET", f"/{bucket}?versions", None), ("GET", f"/{bucket}/k?tagging", None),
        ("POST", f"/{bucket}/k?uploads", b""), ("GET", "/", None), ("HEAD", f"/{bucket}", None),
        ("PUT", f"/anon-{uuid.uuid4().hex[:8]}", b""),
    ]
    for method, path, body in attempts:
        status, resp = anon(cluster, method, path, body)
        assert status == 403, (method, path, status, resp)
        if method != "HEAD":
            assert code_of(resp) == "AccessDenied", (method, path, resp)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    s3.get_bucket_policy(Bucket=bucket)
    s3.delete_bucket_policy(Bucket=bucket)


def test_another_user_reads_what_anyone_may_and_nothing_more(cluster, s3, bucket):
    internals = ClusterInternals(cluster)
    key = f"other-{uuid.uuid4().hex[:8]}"
    internals._run(lambda m, s: m.put_credential(Credential(key, "other-secret", f"owner-{key}")))
    other = make_s3(type("C", (), {"endpoint": cluster.endpoint, "access_key": key, "secret_key": "other-secret"}))
    s3.put_object(Bucket=bucket, Key="pub.txt", Body=b"p", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="priv.txt", Body=b"x")
    assert other.get_object(Bucket=bucket, Key="pub.txt")["Body"].read() == b"p"
    for call in (lambda: other.get_object(Bucket=bucket, Key="priv.txt"),
                 lambda: other.list_objects_v2(Bucket=bucket),
                 lambda: other.put_object(Bucket=bucket, Key="pub.txt", Body=b"no"),
                 lambda: other.put_object_acl(Bucket=bucket, Key="priv.txt", ACL="public-read"),
                 lambda: other.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "AccessDenied"
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    assert other.get_object(Bucket=bucket, Key="priv.txt")["Body"].read() == b"x"
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="pub.txt")["Body"].read() == b"p"


def test_a_copy_gets_the_copy_requests_acl_not_the_sources(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"s", ACL="public-read")
    s3.copy_object(Bucket=bucket, Key="copy-private", CopySource={"Bucket": bucket, "Key": "src"})
    s3.copy_object(Bucket=bucket, Key="copy-public", CopySource={"Bucket": bucket, "Key": "src"}, ACL="public-read")
    assert anon(cluster, "GET", f"/{bucket}/copy-private")[0] == 403
    assert anon(cluster, "GET", f"/{bucket}/copy-public") == (200, b"s")
    assert anon(cluster, "GET", f"/{bucket}/src") == (200, b"s")


def test_anonymous_reads_may_not_override_response_headers(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pub", Body=b"p", ACL="public-read")
    status, body = anon(cluster, "GET", f"/{bucket}/pub?response-content-type=text/html")
    assert status == 400 and code_of(body) == "InvalidRequest"
    got = s3.get_object(Bucket=bucket, Key="pub", ResponseContentType="text/html")
    assert got["ContentType"] == "text/html" and got["Body"].read() == b"p"


def test_policy_survives_a_gateway_cache_and_is_read_fresh(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    for _ in range(3):  # put, read, revoke, read: never a stale answer
        s3.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
        assert anon(cluster, "GET", f"/{bucket}/k") == (200, b"k")
        s3.delete_bucket_policy(Bucket=bucket)
        assert anon(cluster, "GET", f"/{bucket}/k")[0] == 403
