"""End to end against a real cluster: what a signature does not cover is refused.

* A presigned PUT URL plus an added, unsigned ``x-amz-copy-source`` (or ``x-amz-meta-*``,
  ``x-amz-tagging``, ``x-objstore-*``) header is 403 AccessDenied and nothing is written.
* Request XML with a DOCTYPE (UTF-8 or UTF-16) is 400 MalformedXML.
* Absurd access keys are refused before any lookup.
"""
from __future__ import annotations

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration

UNSIGNED_MESSAGE = "There were headers present in the request which were not signed"


def send(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def error_of(body: bytes) -> tuple[str, str]:
    tree = ET.fromstring(body[body.find(b"<"):])
    return tree.findtext("Code") or "", tree.findtext("Message") or ""


def signed_send(cluster, method: str, url: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """A request signed with SigV4 header auth (payload hash of ``body``), sent raw."""
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    S3SigV4Auth(Credentials(cluster.access_key, cluster.secret_key), "s3", "us-east-1").add_auth(req)
    prepared = req.prepare()
    return send(prepared.url, method, body or None, dict(prepared.headers.items()))


def exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False


@pytest.mark.parametrize("signature_version", ["s3v4", "default"])
@pytest.mark.parametrize("name,value", [
    ("x-amz-copy-source", "{bucket}/secret"),
    ("x-amz-meta-foo", "bar"),
    ("x-amz-tagging", "a=b"),
    ("x-objstore-policy", "replica:1"),
])
def test_presigned_put_with_added_header_is_refused(cluster, s3, bucket, signature_version, name, value):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"top secret")
    signer = make_s3(cluster, signature_version="s3v4") if signature_version == "s3v4" else make_s3(cluster)
    url = signer.generate_presigned_url("put_object", ExpiresIn=300, Params={
        "Bucket": bucket, "Key": "upload", "ContentType": "text/plain"})
    plain = {"Content-Type": "text/plain"}
    status, body = send(url, "PUT", b"", {**plain, name: value.format(bucket=bucket)})
    assert status == 403, body
    if signature_version == "default" and name.startswith("x-amz-"):
        # SigV2 signs every x-amz-* header sent: an added one breaks the signature.
        assert error_of(body)[0] == "SignatureDoesNotMatch"
    else:
        assert error_of(body) == ("AccessDenied", UNSIGNED_MESSAGE)
    assert not exists(s3, bucket, "upload")
    # The URL itself still works, and stores what was sent, not a copy.
    status, body = send(url, "PUT", b"mine", plain)
    assert status == 200, body
    assert s3.get_object(Bucket=bucket, Key="upload")["Body"].read() == b"mine"


def test_signed_request_with_added_unsigned_header_is_refused(cluster, s3, bucket):
    url = f"{cluster.endpoint}/{bucket}/k"
    status, body = signed_send(cluster, "PUT", url, b"data", {"x-amz-meta-signed": "yes"})
    assert status == 200, body
    req = AWSRequest(method="PUT", url=url, data=b"data")
    S3SigV4Auth(Credentials(cluster.access_key, cluster.secret_key), "s3", "us-east-1").add_auth(req)
    headers = {**dict(req.prepare().headers.items()), "x-amz-meta-added": "later"}
    status, body = send(url, "PUT", b"data", headers)
    assert status == 403 and error_of(body) == ("AccessDenied", UNSIGNED_MESSAGE)
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {"signed": "yes"}


DOCTYPE = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("op", ["tagging", "delete", "versioning"])
def test_xml_with_doctype_is_malformed(cluster, s3, bucket, op, encoding):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    query, document = {
        "tagging": ("k?tagging", "<Tagging><TagSet><Tag><Key>&b;</Key><Value>v</Value></Tag></TagSet></Tagging>"),
        "delete": ("?delete", "<Delete><Object><Key>&b;</Key></Object></Delete>"),
        "versioning": ("?versioning", "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
    }[op]
    body = (f'<?xml version="1.0" encoding="{encoding}"?>' + DOCTYPE + document).encode(encoding)
    headers = {"Content-Type": "application/xml"}
    if op == "delete":
        import base64
        import hashlib
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    method = "POST" if op == "delete" else "PUT"
    status, answer = signed_send(cluster, method, f"{cluster.endpoint}/{bucket}/{query}", body, headers)
    assert status == 400 and error_of(answer)[0] == "MalformedXML", answer
    assert exists(s3, bucket, "k")


@pytest.mark.parametrize("access_key", ["A" * 129, "A" * 4000])
def test_absurd_access_keys_refused(cluster, bucket, access_key):
    req = AWSRequest(method="GET", url=f"{cluster.endpoint}/{bucket}")
    S3SigV4Auth(Credentials(access_key, "x"), "s3", "us-east-1").add_auth(req)
    status, body = send(req.url, "GET", None, dict(req.prepare().headers.items()))
    assert status == 403 and error_of(body)[0] == "InvalidAccessKeyId"
