"""STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] uploads against a real cluster.

The seed signature comes from botocore's signer; the chunk and trailer signatures are
computed here from the AWS documentation. A tampered chunk must be refused with
SignatureDoesNotMatch and leave nothing stored.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

import pytest

from tests.integration.test_bad_input import assert_absent, raw_request, signed_headers, xml_code

pytestmark = pytest.mark.integration

EMPTY = hashlib.sha256(b"").hexdigest()


def _key(secret: str, date: str) -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in ("us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def chunked_upload(cluster, path: str, chunks: list[bytes], trailer: tuple[str, str] | None = None,
                   tamper: bool = False) -> tuple[int, bytes]:
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    decoded = sum(len(c) for c in chunks)
    # The encoded length depends only on sizes and fixed-width signatures: build once to measure.
    extra = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded)}
    if trailer:
        extra["x-amz-trailer"] = trailer[0]

    def encode(seed: str, amz_date: str) -> bytes:
        date = amz_date[:8]
        scope = f"{date}/us-east-1/s3/aws4_request"
        key = _key(cluster.secret_key, date)
        out, prev = bytearray(), seed
        for data in [*chunks, b""]:
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY, hashlib.sha256(data).hexdigest()])
            sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
            out += f"{len(data):x};chunk-signature={sig}\r\n".encode()
            if data:
                out += (data[:-1] + bytes([data[-1] ^ 1]) if tamper and prev != seed else data) + b"\r\n"
            prev = sig
        if trailer:
            out += f"{trailer[0]}:{trailer[1]}\r\n".encode()
            block = f"{trailer[0]}:{trailer[1]}\n"
            sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev, hashlib.sha256(block.encode()).hexdigest()])
            out += f"x-amz-trailer-signature:{hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()}\r\n".encode()
        out += b"\r\n"
        return bytes(out)

    length = len(encode("0" * 64, "20260101T000000Z"))
    h = signed_headers(cluster, "PUT", path, {**extra, "Content-Length": str(length)}, payload_hash=mode)
    seed = h["Authorization"].rsplit("Signature=", 1)[1]
    body = encode(seed, h["X-Amz-Date"])
    assert len(body) == length
    return raw_request(cluster, "PUT", path, h, body)


def test_signed_chunked_upload(cluster, s3, bucket):
    chunks = [b"a" * 65536, b"b" * 65536, b"tail"]
    status, resp = chunked_upload(cluster, f"/{bucket}/signed-chunked", chunks)
    assert status == 200, resp
    assert s3.get_object(Bucket=bucket, Key="signed-chunked")["Body"].read() == b"".join(chunks)


def test_signed_chunked_upload_with_checksum_trailer(cluster, s3, bucket):
    chunks = [b"x" * 70000, b"y" * 1000]
    crc = base64.b64encode(zlib.crc32(b"".join(chunks)).to_bytes(4, "big")).decode()
    status, resp = chunked_upload(cluster, f"/{bucket}/signed-trailer", chunks, trailer=("x-amz-checksum-crc32", crc))
    assert status == 200, resp
    got = s3.get_object(Bucket=bucket, Key="signed-trailer", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(chunks)
    assert got["ChecksumCRC32"] == crc


def test_tampered_chunk_is_refused(cluster, s3, bucket):
    status, resp = chunked_upload(cluster, f"/{bucket}/tampered", [b"a" * 65536, b"b" * 65536], tamper=True)
    assert status == 403 and xml_code(resp) == "SignatureDoesNotMatch"
    assert_absent(s3, bucket, "tampered")


def test_wrong_trailer_checksum_is_refused(cluster, s3, bucket):
    status, resp = chunked_upload(cluster, f"/{bucket}/badcrc", [b"z" * 1000], trailer=("x-amz-checksum-crc32", "AAAAAA=="))
    assert status == 400 and xml_code(resp) == "BadDigest"
    assert_absent(s3, bucket, "badcrc")
