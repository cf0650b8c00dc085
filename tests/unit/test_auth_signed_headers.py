"""Request authentication must cover what changes a request's meaning, and refuse bad lifetimes.

* Every ``x-amz-*`` and ``x-objstore-*`` header a request carries must be among its SigV4
  SignedHeaders (header and presigned forms), or the request is 403 AccessDenied; only
  ``x-amz-content-sha256`` is exempt, its value being bound to the signature separately.
* Presigned lifetimes: an expired URL (V2 or V4) is 403 AccessDenied; a malformed V4
  X-Amz-Expires is 400 AuthorizationQueryParametersError; a V2 Expires that is not a
  number, or more than a week ahead, is 403 AccessDenied, never a 500.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict

from gateway.auth import sigv2, sigv4
from objstore.errors import AccessDenied, AuthorizationQueryParametersError
from tests.unit.test_sigv4 import Captured, botocore_signed, verify_captured

URL = "https://s3.example.test/bucket/key"
UNSIGNED_MESSAGE = "There were headers present in the request which were not signed"
ADDED = [
    ("x-amz-copy-source", "/bucket/secret"),
    ("X-Amz-Meta-Foo", "bar"),
    ("x-amz-tagging", "a=b"),
    ("x-amz-acl", "public-read"),
    ("X-Objstore-Policy", "ec:4+2"),
]


def with_header(c: Captured, name: str, value: str) -> Captured:
    return Captured(c.method, c.path, c.query, [*c.headers, (name, value)], c.body)


@pytest.mark.parametrize("name,value", ADDED)
def test_presigned_put_refuses_an_added_unsigned_header(name: str, value: str) -> None:
    c = botocore_signed("PUT", URL, presign=300)
    verify_captured(c)
    with pytest.raises(AccessDenied, match=UNSIGNED_MESSAGE) as info:
        verify_captured(with_header(c, name, value))
    assert info.value.status == 403 and name.lower() in info.value.extra["HeadersNotSigned"]


@pytest.mark.parametrize("name,value", ADDED)
def test_header_auth_refuses_an_added_unsigned_header(name: str, value: str) -> None:
    c = botocore_signed("PUT", URL, body=b"data")
    verify_captured(c)
    with pytest.raises(AccessDenied, match=UNSIGNED_MESSAGE):
        verify_captured(with_header(c, name, value))


def test_signed_amz_headers_are_accepted() -> None:
    headers = {"x-amz-copy-source": "/bucket/src", "x-amz-meta-foo": "bar", "x-amz-tagging": "a=b"}
    verify_captured(botocore_signed("PUT", URL, headers=headers))
    verify_captured(botocore_signed("PUT", URL, headers=headers, presign=300))


def test_content_sha256_may_be_unsigned() -> None:
    c = botocore_signed("PUT", URL, presign=300)
    verify_captured(with_header(c, "x-amz-content-sha256", "UNSIGNED-PAYLOAD"))


def test_unsigned_headers_lists_only_unsigned_extension_headers() -> None:
    headers = sigv4.normalise_headers(CIMultiDict([
        ("Host", "h"), ("Content-Type", "text/plain"), ("x-amz-date", "d"), ("x-amz-meta-a", "1"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("x-objstore-key", "k"), ("X-Amz-Meta-A", "2")]))
    assert sigv4.unsigned_headers(headers, ["host", "x-amz-date"]) == ["x-amz-meta-a", "x-objstore-key"]
    assert sigv4.unsigned_headers(headers, ["host", "x-amz-date", "x-amz-meta-a", "x-objstore-key"]) == []


# --- lifetimes ---------------------------------------------------------------------------------

def v2_presign(expires: int = 600) -> tuple[str, str]:
    req = AWSRequest(method="GET", url="http://h/bucket/key")
    HmacV1QueryAuth(Credentials("OBJTESTKEY", "secret"), expires=expires).add_auth(req)
    parts = urlsplit(req.url)
    return parts.path, parts.query


def v2_parse(query: str, now: datetime | None = None, headers: dict | None = None) -> sigv2.PresignedV2:
    return sigv2.parse_presigned("GET", "/bucket/key", query, headers or {}, now or datetime.now(timezone.utc))


@pytest.mark.parametrize("expires", ["tomorrow", "-5", "1e9", "", "99999999999999999999999999999999",
                                     "-99999999999999999999", "١٢٣"])
def test_v2_malformed_expires_is_access_denied(expires: str) -> None:
    with pytest.raises(AccessDenied) as info:
        v2_parse(f"AWSAccessKeyId=A&Signature=x&Expires={expires}")
    assert info.value.status == 403


def test_v2_expires_is_capped_at_a_week() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    week = int(now.timestamp()) + 604800
    v2_parse(f"AWSAccessKeyId=A&Signature=x&Expires={week}", now)
    with pytest.raises(AccessDenied, match="week"):
        v2_parse(f"AWSAccessKeyId=A&Signature=x&Expires={week + 1}", now)


def test_v2_refuses_objstore_headers() -> None:
    path, query = v2_presign()
    with pytest.raises(AccessDenied, match=UNSIGNED_MESSAGE):
        v2_parse(query, headers={"X-Objstore-Policy": "ec:4+2"})


def test_expired_urls_are_403() -> None:
    _, query = v2_presign(60)
    with pytest.raises(AccessDenied, match="Request has expired") as info:
        v2_parse(query, datetime.now(timezone.utc) + timedelta(seconds=120))
    assert info.value.status == 403
    c = botocore_signed("GET", URL, presign=60)
    with pytest.raises(AccessDenied, match="Request has expired") as info:
        verify_captured(c, now=c.amz_date() + timedelta(seconds=61))
    assert info.value.status == 403


@pytest.mark.parametrize("expires", ["-1", "604801", "99999999999999999999", "soon"])
def test_v4_malformed_expires_is_authorization_query_parameters_error(expires: str) -> None:
    c = botocore_signed("GET", URL, presign=60)
    query = c.query.replace("X-Amz-Expires=60", f"X-Amz-Expires={expires}")
    with pytest.raises(AuthorizationQueryParametersError) as info:
        verify_captured(Captured(c.method, c.path, query, c.headers, c.body), now=c.amz_date())
    assert info.value.status == 400 and info.value.code == "AuthorizationQueryParametersError"
