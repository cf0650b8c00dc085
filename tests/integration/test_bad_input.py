"""Bad input gets a clear S3 error and changes nothing.

Requests here are signed with botocore's real SigV4 signer and sent over a raw socket, so
the tests can send what well-behaved clients never do: no Content-Length, a body shorter
than declared, malformed XML, oversized headers.
"""
from __future__ import annotations

import socket
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


class FixedPayloadAuth(S3SigV4Auth):
    """botocore's S3 signer, signing the payload hash given (botocore would hash the body)."""

    def __init__(self, credentials, service: str, region: str, payload_hash: str) -> None:
        super().__init__(credentials, service, region)
        self._payload_hash = payload_hash

    def payload(self, request) -> str:
        return self._payload_hash


def signed_headers(cluster, method: str, path: str, headers: dict[str, str], payload_hash: str = "UNSIGNED-PAYLOAD",
                   when: datetime | None = None) -> dict[str, str]:
    req = AWSRequest(method=method, url=cluster.endpoint + path, headers=headers)
    auth = FixedPayloadAuth(Credentials(cluster.access_key, cluster.secret_key), "s3", "us-east-1", payload_hash)
    if when is not None:
        import botocore.auth as ba

        real = ba.datetime.datetime

        class Frozen(real):  # type: ignore[misc, valid-type]
            @classmethod
            def utcnow(cls):
                return when.replace(tzinfo=None)

            @classmethod
            def now(cls, tz=None):
                return when if tz else when.replace(tzinfo=None)

        ba.datetime.datetime = Frozen
        try:
            auth.add_auth(req)
        finally:
            ba.datetime.datetime = real
    else:
        auth.add_auth(req)
    return dict(req.headers.items())


def raw_request(cluster, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                shutdown: bool = False, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send one request exactly as given; return (status, body)."""
    host = f"127.0.0.1:{cluster.s3_port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", cluster.s3_port), timeout=timeout) as s:
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
        except (ConnectionResetError, socket.timeout):
            pass
    raw = b"".join(chunks)
    if not raw:
        return 0, b""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, rest


def xml_code(body: bytes) -> str:
    start = body.find(b"<")
    return ET.fromstring(body[start:]).findtext("Code")


def assert_absent(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_malformed_xml_on_create_bucket(cluster, s3):
    name = f"xml-{uuid.uuid4().hex[:8]}"
    body = b"<CreateBucketConfiguration><LocationConstraint>us-east-1"
    h = signed_headers(cluster, "PUT", f"/{name}", {"Content-Length": str(len(body))})
    status, resp = raw_request(cluster, "PUT", f"/{name}", h, body)
    assert status == 400 and xml_code(resp) == "MalformedXML"
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_missing_content_length(cluster, s3, bucket):
    h = signed_headers(cluster, "PUT", f"/{bucket}/nolen", {})
    status, resp = raw_request(cluster, "PUT", f"/{bucket}/nolen", h, b"")
    assert status == 411 and xml_code(resp) == "MissingContentLength"
    assert_absent(s3, bucket, "nolen")


def test_body_shorter_than_declared(cluster, s3, bucket):
    h = signed_headers(cluster, "PUT", f"/{bucket}/short", {"Content-Length": "100000"})
    status, resp = raw_request(cluster, "PUT", f"/{bucket}/short", h, b"x" * 1000, shutdown=True)
    # The client hung up its side; the gateway answers IncompleteBody if it still can.
    assert status in (0, 400)
    if status == 400:
        assert xml_code(resp) == "IncompleteBody"
    assert_absent(s3, bucket, "short")


def test_signed_payload_mismatch(cluster, s3, bucket):
    import hashlib

    body = b"actual body"
    wrong = hashlib.sha256(b"another body").hexdigest()
    h = signed_headers(cluster, "PUT", f"/{bucket}/sha", {"Content-Length": str(len(body))}, payload_hash=wrong)
    status, resp = raw_request(cluster, "PUT", f"/{bucket}/sha", h, body)
    assert status == 400 and xml_code(resp) == "XAmzContentSHA256Mismatch"
    assert_absent(s3, bucket, "sha")


def test_oversized_user_metadata(cluster, s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bigmeta", Body=b"x", Metadata={"big": "v" * 3000})
    assert e.value.response["Error"]["Code"] == "MetadataTooLarge"
    assert_absent(s3, bucket, "bigmeta")


def test_oversized_header_section(cluster, s3, bucket):
    h = signed_headers(cluster, "PUT", f"/{bucket}/bighdr", {"Content-Length": "1", "X-Filler": "f" * 20000})
    status, resp = raw_request(cluster, "PUT", f"/{bucket}/bighdr", h, b"x")
    assert status == 400 and xml_code(resp) == "RequestHeaderSectionTooLarge"
    assert_absent(s3, bucket, "bighdr")


def test_skewed_date(cluster, s3, bucket):
    when = datetime.now(timezone.utc) - timedelta(hours=1)
    h = signed_headers(cluster, "PUT", f"/{bucket}/skew", {"Content-Length": "1"}, when=when)
    status, resp = raw_request(cluster, "PUT", f"/{bucket}/skew", h, b"x")
    assert status == 403 and xml_code(resp) == "RequestTimeTooSkewed"
    assert_absent(s3, bucket, "skew")


def test_anonymous_request_denied(cluster, bucket):
    status, resp = raw_request(cluster, "GET", f"/{bucket}", {})
    assert status == 403 and xml_code(resp) == "AccessDenied"


def test_error_has_request_id(cluster):
    status, resp = raw_request(cluster, "GET", "/no-such-bucket-rid", signed_headers(cluster, "GET", "/no-such-bucket-rid", {}))
    assert status == 404
    tree = ET.fromstring(resp[resp.find(b"<"):])
    assert tree.findtext("Code") == "NoSuchBucket" and tree.findtext("RequestId")


def test_unsupported_operation_is_not_implemented(cluster, bucket):
    path = f"/{bucket}?policy"  # (ACLs are served: the owner-only one)
    status, resp = raw_request(cluster, "GET", path, signed_headers(cluster, "GET", path, {}))
    assert status == 501 and xml_code(resp) == "NotImplemented"
