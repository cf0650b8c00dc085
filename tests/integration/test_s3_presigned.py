"""Presigned URLs made by boto3 and used with plain urllib, no signing client.

Each test runs with a client configured for SigV4 (``X-Amz-*`` query parameters) and with
boto3's default, which presigns S3 URLs with Signature Version 2 (``AWSAccessKeyId``,
``Expires``, ``Signature``).
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["s3v4", "default"])
def signer(request, cluster):
    """A client that presigns with SigV4, or with boto3's default (SigV2 for S3)."""
    if request.param == "s3v4":
        return make_s3(cluster, signature_version="s3v4")
    return make_s3(cluster)


def signature_param(url: str) -> str:
    return "X-Amz-Signature" if "X-Amz-Signature=" in url else "Signature"


def fetch(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def error_of(body: bytes) -> tuple[str, str]:
    tree = ET.fromstring(body[body.find(b"<"):])
    return tree.findtext("Code"), tree.findtext("Message")


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    q = dict(parse_qsl(parts.query, keep_blank_values=True))
    q.update(changes)
    return urlunsplit(parts._replace(query=urlencode(q)))


def test_presigned_get(signer, s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/hello world.txt", Body=b"presigned hello", ContentType="text/plain")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/hello world.txt"},
                                    ExpiresIn=300)
    assert "X-Amz-Signature=" in url or "Signature=" in url
    status, headers, body = fetch(url)
    assert status == 200 and body == b"presigned hello"
    assert headers["Content-Type"] == "text/plain"
    status, headers, body = fetch(url, headers={"Range": "bytes=0-8"})
    assert status == 206 and body == b"presigned"


def test_presigned_get_with_response_overrides(signer, s3, bucket):
    s3.put_object(Bucket=bucket, Key="report", Body=b"data")
    url = signer.generate_presigned_url("get_object", Params={
        "Bucket": bucket, "Key": "report", "ResponseContentDisposition": 'attachment; filename="r.csv"',
        "ResponseContentType": "text/csv"}, ExpiresIn=300)
    status, headers, body = fetch(url)
    assert status == 200 and body == b"data"
    assert headers["Content-Disposition"] == 'attachment; filename="r.csv"'
    assert headers["Content-Type"] == "text/csv"


def test_presigned_head(signer, s3, bucket):
    s3.put_object(Bucket=bucket, Key="h", Body=b"12345")
    url = signer.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "h"}, ExpiresIn=300)
    status, headers, body = fetch(url, method="HEAD")
    assert status == 200 and headers["Content-Length"] == "5" and body == b""
    missing = signer.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "nope"}, ExpiresIn=300)
    assert fetch(missing, method="HEAD")[0] == 404


def test_presigned_put_then_readable(signer, s3, bucket):
    # SigV2 signs the Content-Type, so the URL names the one the upload will send.
    url = signer.generate_presigned_url("put_object", ExpiresIn=300, Params={
        "Bucket": bucket, "Key": "uploaded/file.bin", "ContentType": "application/x-thing"})
    payload = bytes(range(256)) * 1200  # over the inline threshold: a streamed write
    status, headers, _ = fetch(url, method="PUT", body=payload, headers={"Content-Type": "application/x-thing"})
    assert status == 200
    got = s3.get_object(Bucket=bucket, Key="uploaded/file.bin")
    assert got["Body"].read() == payload
    assert got["ETag"] == headers["ETag"]
    assert got["ContentType"] == "application/x-thing"


def test_presigned_put_with_signed_content_type(signer, s3, bucket):
    url = signer.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "typed", "ContentType": "image/png"},
                                    ExpiresIn=300)
    status, _, body = fetch(url, method="PUT", body=b"png", headers={"Content-Type": "image/png"})
    assert status == 200
    assert s3.head_object(Bucket=bucket, Key="typed")["ContentType"] == "image/png"
    # The content type is part of the signature: another one does not match.
    status, _, body = fetch(url, method="PUT", body=b"gif", headers={"Content-Type": "image/gif"})
    assert status == 403 and error_of(body)[0] == "SignatureDoesNotMatch"
    assert s3.get_object(Bucket=bucket, Key="typed")["Body"].read() == b"png"


def test_presigned_delete(signer, s3, bucket):
    s3.put_object(Bucket=bucket, Key="doomed", Body=b"x")
    url = signer.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": "doomed"}, ExpiresIn=300)
    status, _, _ = fetch(url, method="DELETE")
    assert status == 204
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="doomed")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_presigned_list_bucket(signer, s3, bucket):
    s3.put_object(Bucket=bucket, Key="listed", Body=b"x")
    url = signer.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket}, ExpiresIn=300)
    status, _, body = fetch(url)
    assert status == 200 and b"<Key>listed</Key>" in body


def test_expired_urls(cluster, s3, bucket):
    s3.put_object(Bucket=bucket, Key="brief", Body=b"x")
    signed_at = time.time()
    urls = [c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "brief"}, ExpiresIn=1)
            for c in (make_s3(cluster, signature_version="s3v4"), make_s3(cluster))]
    assert "X-Amz-Signature=" in urls[0] and "&Signature=" in urls[1]
    time.sleep(max(0.0, signed_at + 2.05 - time.time()))  # the URLs' lifetime must pass; nothing to poll
    for url in urls:
        status, _, body = fetch(url)
        assert status == 403
        assert error_of(body) == ("AccessDenied", "Request has expired")


def test_tampered_urls(signer, s3, bucket):
    s3.put_object(Bucket=bucket, Key="guarded", Body=b"secret")
    s3.put_object(Bucket=bucket, Key="other", Body=b"other")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "guarded"}, ExpiresIn=300)
    name = signature_param(url)
    sig = dict(parse_qsl(urlsplit(url).query))[name]
    # Another digit, not just another case of the same one (hex signatures may be compared
    # case-insensitively; V2 signatures are base64, where case matters).
    flipped = ("0" if sig[0].lower() != "0" else "1") + sig[1:]
    longer = {"X-Amz-Expires": "600"} if name == "X-Amz-Signature" else {
        "Expires": str(int(dict(parse_qsl(urlsplit(url).query))["Expires"]) + 600)}
    for bad in (
        with_query(url, **{name: flipped}),
        with_query(url, **longer),  # a longer life than was signed
        url.replace("/guarded?", "/other?"),  # another key
    ):
        status, _, body = fetch(bad)
        assert status == 403 and error_of(body)[0] == "SignatureDoesNotMatch", bad
    # A URL for GET does not allow a PUT or DELETE.
    status, _, body = fetch(url, method="PUT", body=b"overwrite")
    assert status == 403 and error_of(body)[0] == "SignatureDoesNotMatch"
    status, _, body = fetch(url, method="DELETE")
    assert status == 403 and error_of(body)[0] == "SignatureDoesNotMatch"
    assert s3.get_object(Bucket=bucket, Key="guarded")["Body"].read() == b"secret"


def test_unknown_access_key_and_malformed_query(cluster, signer, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    q = dict(parse_qsl(urlsplit(url).query))
    if "X-Amz-Credential" in q:
        unknown = {"X-Amz-Credential": q["X-Amz-Credential"].replace(cluster.access_key, "OBJUNKNOWN00")}
        # As AWS answers: a lifetime over a week is AuthorizationQueryParametersError.
        malformed = [({"X-Amz-Expires": "604801"}, 400, "AuthorizationQueryParametersError"),
                     ({"X-Amz-Date": "yesterday"}, 400, "InvalidArgument")]
    else:
        unknown = {"AWSAccessKeyId": "OBJUNKNOWN00"}
        malformed = [({"Expires": "tomorrow"}, 403, "AccessDenied")]  # as AWS: 403 for V2
    status, _, body = fetch(with_query(url, **unknown))
    assert status == 403 and error_of(body)[0] == "InvalidAccessKeyId"
    for change, want_status, want_code in malformed:
        status, _, body = fetch(with_query(url, **change))
        assert status == want_status and error_of(body)[0] == want_code, change
