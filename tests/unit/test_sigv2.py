"""SigV2 presigned URLs: what botocore's HmacV1QueryAuth signs, gateway.auth.sigv2 verifies."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.auth import sigv2
from objstore.errors import AccessDenied, SignatureDoesNotMatch

AK, SK = "OBJTESTKEY", "secret/key+value"


def presign(method: str, url: str, headers: dict[str, str] | None = None, auth_path: str | None = None,
            expires: int = 600) -> tuple[str, str]:
    """(raw path, raw query) of a botocore V2 presigned URL."""
    req = AWSRequest(method=method, url=url, headers=headers or {})
    if auth_path is not None:
        req.auth_path = auth_path
    HmacV1QueryAuth(Credentials(AK, SK), expires=expires).add_auth(req)
    parts = urlsplit(req.url)
    return parts.path, parts.query


def verify(method: str, path: str, query: str, headers: dict[str, str] | None = None,
           host_bucket: str | None = None, now: datetime | None = None):
    now = now or datetime.now(timezone.utc)
    parsed = sigv2.parse_presigned(method, path, query, headers or {}, now, host_bucket)
    return sigv2.check_signature(parsed, SK)


@pytest.mark.parametrize("url", [
    "http://h/bucket/key",
    "http://h/bucket/dir/with%20space/%C3%BC.txt",
    "http://h/bucket/plus%2Bsign?response-content-type=text%2Fplain&response-content-disposition=attachment%3B%20x",
    "http://h/bucket/k?versionId=abc",
    "http://h/bucket?list-type=2&prefix=a%2Fb",
    "http://h/bucket?uploads",
])
def test_get_urls_verify(url):
    path, query = presign("GET", url)
    ctx = verify("GET", path, query)
    assert ctx.access_key == AK and ctx.presigned and ctx.payload_mode == "unsigned"


def test_bucket_root_signed_with_trailing_slash():
    path, query = presign("GET", "http://h/bucket?list-type=2", auth_path="/bucket/")
    assert path == "/bucket"
    verify("GET", path, query)


def test_virtual_hosted_bucket():
    path, query = presign("GET", "http://bucket.localhost/key", auth_path="/bucket/key")
    verify("GET", path, query, host_bucket="bucket")
    with pytest.raises(SignatureDoesNotMatch):
        verify("GET", path, query, host_bucket="other")


def test_put_signs_content_type_and_amz_headers():
    path, query = presign("PUT", "http://h/bucket/key", {"Content-Type": "image/png", "x-amz-meta-a": "1"})
    assert "content-type=image%2Fpng" in query and "x-amz-meta-a=1" in query
    # The values may come from the query alone, or from headers that match it.
    verify("PUT", path, query)
    verify("PUT", path, query, {"Content-Type": "image/png", "x-amz-meta-a": "1"})
    for wrong in ({"Content-Type": "image/gif"}, {"x-amz-meta-a": "2"}, {"x-amz-meta-b": "extra"}):
        with pytest.raises(SignatureDoesNotMatch):
            verify("PUT", path, query, wrong)


def test_method_path_and_signature_are_bound():
    path, query = presign("GET", "http://h/bucket/key")
    for method, p, q in (("PUT", path, query), ("GET", "/bucket/other", query),
                         ("GET", path, query.replace("Signature=", "Signature=A"))):
        with pytest.raises(SignatureDoesNotMatch):
            verify(method, p, q)


def test_expiry():
    path, query = presign("GET", "http://h/bucket/key", expires=60)
    expires = datetime.fromtimestamp(int(dict(parse_qsl(query))["Expires"]), timezone.utc)
    verify("GET", path, query, now=expires - timedelta(seconds=1))
    verify("GET", path, query, now=expires)
    with pytest.raises(AccessDenied, match="Request has expired"):
        verify("GET", path, query, now=expires + timedelta(seconds=1))


def test_malformed_parameters():
    with pytest.raises(AccessDenied, match="Invalid date"):  # as AWS: 403, not 400
        verify("GET", "/b/k", "AWSAccessKeyId=A&Signature=x&Expires=soon")
    with pytest.raises(AccessDenied):
        verify("GET", "/b/k", "AWSAccessKeyId=A&Signature=x")


def test_detection():
    assert sigv2.is_presigned_v2("AWSAccessKeyId=A&Signature=x&Expires=1")
    assert not sigv2.is_presigned_v2("X-Amz-Algorithm=AWS4-HMAC-SHA256&AWSAccessKeyId=A&Signature=x")
    assert not sigv2.is_presigned_v2("list-type=2")
