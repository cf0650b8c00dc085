"""Slow clients against a real gateway with short limits (one more gateway of the session
cluster, started with them): a connection that stalls in its headers is closed, a body
that stalls is cut with RequestTimeout and stores nothing, and requests beyond the
concurrency limit get 503 SlowDown.
"""
from __future__ import annotations

import hashlib
import socket
import time
from typing import Iterator

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.cluster_harness import ExtraGateway
from tests.conftest import temporary_bucket

pytestmark = pytest.mark.integration

STALL, HEADER_TIMEOUT, MARGIN = 1.5, 2.0, 4.0


@pytest.fixture(scope="module")
def gateway(cluster, tmp_path_factory) -> Iterator[ExtraGateway]:
    limits = ("--body-stall-timeout", str(STALL), "--header-timeout", str(HEADER_TIMEOUT), "--max-requests", "2")
    with ExtraGateway(cluster, tmp_path_factory.mktemp("slow") / "gw-slow.log", limits, gateway_id="gw-slow") as gw:
        yield gw


def _s3(gateway):
    return boto3.client("s3", endpoint_url=gateway.endpoint, aws_access_key_id=gateway.access_key,
                        aws_secret_access_key=gateway.secret_key, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def _connect(gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.s3_port), timeout=HEADER_TIMEOUT + MARGIN)


def _read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    while True:
        data = sock.recv(65536)
        if not data:
            return out
        out += data


def _read_error_response(sock: socket.socket) -> bytes:
    """What the gateway sends until its S3 error document is complete, or it closes."""
    out = b""
    while b"</Error>" not in out:
        data = sock.recv(65536)
        if not data:
            break
        out += data
    return out


def _start_stalled_put(gateway, bucket: str, key: str, size: int = 1000, sent: int = 10) -> socket.socket:
    """A signed PUT of ``size`` bytes whose sender stops after ``sent`` bytes of body."""
    body = b"x" * size
    url = f"{gateway.endpoint}/{bucket}/{key}"
    req = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Length": str(size)})
    S3SigV4Auth(Credentials(gateway.access_key, gateway.secret_key), "s3", "us-east-1").add_auth(req)
    assert req.headers["X-Amz-Content-SHA256"] == hashlib.sha256(body).hexdigest()
    head = f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{gateway.s3_port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
    sock = _connect(gateway)
    sock.sendall(head.encode() + body[:sent])
    return sock


def test_a_connection_stalled_in_its_headers_is_closed(gateway):
    with _connect(gateway) as sock:
        t0 = time.monotonic()
        sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{gateway.s3_port}\r\nX-Slow: ".encode())
        assert _read_until_closed(sock) == b""
        assert time.monotonic() - t0 < HEADER_TIMEOUT + MARGIN


@pytest.fixture
def slow_bucket(gateway) -> Iterator[str]:
    yield from temporary_bucket(_s3(gateway))


def test_a_stalled_body_is_cut_with_request_timeout_and_stores_nothing(gateway, slow_bucket):
    s3 = _s3(gateway)
    t0 = time.monotonic()
    with _start_stalled_put(gateway, slow_bucket, "k") as sock:
        answer = _read_error_response(sock)
    assert time.monotonic() - t0 < STALL + MARGIN
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"<Code>RequestTimeout</Code>" in answer
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=slow_bucket, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert s3.list_objects_v2(Bucket=slow_bucket)["KeyCount"] == 0


def test_requests_beyond_the_limit_get_slow_down(gateway, slow_bucket):
    s3 = _s3(gateway)
    held = [_start_stalled_put(gateway, slow_bucket, f"k{i}") for i in range(2)]
    try:
        time.sleep(0.3)  # both stalled PUTs are being served (their bodies are awaited)
        with pytest.raises(ClientError) as e:
            s3.list_objects_v2(Bucket="busy")
        r = e.value.response
        assert (r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]) == (503, "SlowDown")
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + STALL + MARGIN
    while True:  # once the stalled PUTs are cut, requests are served again
        try:
            assert s3.list_objects_v2(Bucket=slow_bucket)["KeyCount"] == 0
            return
        except ClientError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
