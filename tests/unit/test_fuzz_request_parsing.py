"""Fuzzing the parsers of untrusted request data: only S3 errors may escape.

Targets: SigV4 header and presigned parsing (and the signature check that follows), SigV2
presigned parsing, the aws-chunked decoder, every request-XML parser, Range and
copy-source-range headers, and conditional headers. Property: for any input, each either
returns or raises an :class:`objstore.errors.ObjstoreError` subclass, never anything else
(which the gateway would answer as a 500).

Examples per target default to ``OBJSTORE_FUZZ_EXAMPLES`` (200): a few seconds each in CI;
set the variable higher to fuzz longer.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.auth import sigv2, sigv4
from gateway.auth.streaming import AwsChunkedDecoder
from gateway.conditions import etag_matches, parse_http_date
from gateway.handlers.batch_delete import parse_delete
from gateway.handlers.multipart import parse_complete
from gateway.handlers.object_get import check_conditions, parse_range
from gateway.handlers.tagging import parse_tagging
from gateway.object_headers import parse_tagging_header
from gateway.handlers.upload_part import source_range
from gateway.handlers.versioning import parse_versioning
from gateway.xml import fromstring, parse_create_bucket
from objstore.errors import ObjstoreError

EXAMPLES = int(os.environ.get("OBJSTORE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
AMZ_NOW = "20240101T120000Z"


def only_s3_errors(fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except ObjstoreError:
        pass


# --- SigV4 -----------------------------------------------------------------------------------

_token = st.one_of(st.text(max_size=30), st.sampled_from([
    "AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request", "host;x-amz-date", "host", "0" * 64, AMZ_NOW,
    "AWS4-HMAC-SHA256", "UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "-1", "604801", "60",
    "AWS4-ECDSA-P256-SHA256", "", "=", ",", "/", "%", "%ZZ", "+", "\u00e9", "\x00"]))


def _auth_header(cred: str, signed: str, sig: str, scheme: str, sep: str) -> str:
    return f"{scheme} Credential={cred}{sep} SignedHeaders={signed}{sep} Signature={sig}"


@FUZZ
@given(scheme=st.sampled_from(["AWS4-HMAC-SHA256", "AWS", "AWS4-ECDSA-P256-SHA256", ""]) | st.text(max_size=8),
       cred=_token, signed=_token, sig=_token, sep=st.sampled_from([",", ", ", ";", ""]),
       date=_token, sha=_token, extra=st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=3),
       query=st.text(max_size=40), path=st.text(max_size=20))
def test_fuzz_sigv4_header_auth(scheme, cred, signed, sig, sep, date, sha, extra, query, path) -> None:
    headers = CIMultiDict(extra)
    headers.update({"Authorization": _auth_header(cred, signed, sig, scheme, sep), "x-amz-date": date,
                    "x-amz-content-sha256": sha, "host": "h"})
    only_s3_errors(lambda: sigv4.check_signature(
        sigv4.parse_request("PUT", "/" + path, query, headers, NOW), "secret"))


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                                               "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Content-Sha256",
                                               "x-id", "prefix"]), _token, min_size=1),
       raw_tail=st.text(max_size=20), encode=st.booleans())
def test_fuzz_sigv4_presigned(params, raw_tail, encode) -> None:
    from urllib.parse import quote
    query = "&".join(f"{k}={quote(v, safe='') if encode else v}" for k, v in params.items()) + raw_tail
    only_s3_errors(lambda: sigv4.check_signature(
        sigv4.parse_request("GET", "/b/k", query, {"host": "h"}, NOW), "secret"))


@FUZZ
@given(params=st.dictionaries(st.sampled_from(["AWSAccessKeyId", "Signature", "Expires", "versionId", "x-amz-meta-a",
                                               "Content-Type"]), _token | st.integers().map(str), min_size=1),
       headers=st.dictionaries(st.sampled_from(["x-amz-meta-a", "Content-MD5", "x-objstore-key", "X-Amz-Date"]),
                               st.text(max_size=10), max_size=2),
       raw_tail=st.text(max_size=20))
def test_fuzz_sigv2_presigned(params, headers, raw_tail) -> None:
    query = "&".join(f"{k}={v}" for k, v in params.items()) + raw_tail
    only_s3_errors(lambda: sigv2.check_signature(
        sigv2.parse_presigned("GET", "/b/k", query, headers, NOW, None), "secret"))


# --- aws-chunked -----------------------------------------------------------------------------

_CTX = sigv4.AuthContext(access_key="AK", signing_key=b"k" * 32, scope="20240101/us-east-1/s3/aws4_request",
                         amz_date=AMZ_NOW, seed_signature="0" * 64, payload_mode="streaming-signed",
                         content_sha256=None, presigned=False)
_frame = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda n, sig, data: f"{n:x};chunk-signature={sig}\r\n".encode() + data + b"\r\n",
              st.integers(0, 64), st.sampled_from(["0" * 64, "zz", ""]), st.binary(max_size=64)),
    st.builds(lambda n, data: f"{n:x}\r\n".encode() + data + b"\r\n", st.integers(0, 64), st.binary(max_size=64)),
    st.sampled_from([b"0\r\n", b"0\r\n\r\n", b"x-amz-checksum-crc32:AAAAAA==\r\n", b"\r\n",
                     b"x-amz-trailer-signature:" + b"0" * 64 + b"\r\n", b"ffffffffffffffffffff\r\n",
                     b";\r\n", b"-1\r\n"]),
)


@FUZZ
@given(frames=st.lists(_frame, max_size=8), cuts=st.lists(st.integers(1, 50), max_size=6),
       mode=st.sampled_from(["streaming-signed", "streaming-signed-trailer", "streaming-unsigned-trailer",
                             "unsigned"]),
       trailers=st.lists(st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256", "bogus", ""]),
                         max_size=2),
       decoded_length=st.none() | st.integers(-1, 200))
def test_fuzz_aws_chunked_decoder(frames, cuts, mode, trailers, decoded_length) -> None:
    body = b"".join(frames)

    def run() -> None:
        dec = AwsChunkedDecoder(_CTX, mode, trailers, decoded_length)
        pos = 0
        for cut in cuts:
            dec.feed(body[pos:pos + cut])
            pos += cut
        dec.feed(body[pos:])
        dec.finish()

    only_s3_errors(run)


# --- request XML -----------------------------------------------------------------------------

_XML_PARSERS = [parse_create_bucket, parse_complete, parse_delete, parse_versioning, parse_tagging]
_names = st.sampled_from(["CreateBucketConfiguration", "LocationConstraint", "CompleteMultipartUpload", "Part",
                          "PartNumber", "ETag", "ChecksumCRC32", "Delete", "Object", "Key", "VersionId", "Quiet",
                          "VersioningConfiguration", "Status", "MfaDelete", "Tagging", "TagSet", "Tag", "Value",
                          "ETag", "Size", "LastModifiedTime", "x"])
_text = st.one_of(st.text(max_size=12).map(lambda t: t.replace("<", "&lt;").replace("&", "&amp;")),
                  st.sampled_from(["Enabled", "Suspended", "Disabled", "true", "false", "1", "10001", "-1",
                                   '"etag"', "99999999999999999999", "\u0663"]))
_element = st.recursive(
    st.builds(lambda n, t: f"<{n}>{t}</{n}>", _names, _text),
    lambda inner: st.builds(lambda n, kids: f"<{n}>{''.join(kids)}</{n}>", _names, st.lists(inner, max_size=4)),
    max_leaves=12)


@FUZZ
@given(doc=_element, ns=st.booleans(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]),
       junk=st.binary(max_size=8), mutate=st.booleans())
def test_fuzz_xml_parsers_structured(doc, ns, encoding, junk, mutate) -> None:
    if ns:
        doc = doc.replace(">", ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/">', 1)
    try:
        body = (f'<?xml version="1.0" encoding="{encoding}"?>' + doc).encode(encoding)
    except UnicodeEncodeError:
        body = doc.encode()
    if mutate:
        body = body[: len(body) // 2] + junk + body[len(body) // 2:]
    for parser in _XML_PARSERS:
        only_s3_errors(parser, body)


@FUZZ
@given(body=st.binary(max_size=200))
def test_fuzz_xml_parsers_bytes(body) -> None:
    only_s3_errors(fromstring, body)
    for parser in _XML_PARSERS:
        only_s3_errors(parser, body)


# --- Range, copy-source range and conditional headers ------------------------------------------

_digits = st.one_of(st.integers(0, 10**6).map(str), st.text(alphabet="0123456789", max_size=30),
                    st.just("9" * 5000), st.just("\u0663\u0664"), st.just(""))


@FUZZ
@given(first=_digits, last=_digits, prefix=st.sampled_from(["bytes=", "bytes =", "items=", ""]),
       tail=st.sampled_from(["", ",0-1", " ", "\n", "-"]) | st.text(max_size=4), size=st.integers(0, 10**7))
def test_fuzz_range_headers(first, last, prefix, tail, size) -> None:
    header = f"{prefix}{first}-{last}{tail}"
    only_s3_errors(parse_range, header, size)
    only_s3_errors(source_range, header, size)
    only_s3_errors(parse_range, tail, size)


_http_date = st.one_of(st.text(max_size=40), st.sampled_from([
    "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 99999 07:28:00 GMT", "Wed, 21 Oct 0000 07:28:00 GMT",
    "Sun, 06 Nov 1994 08:49:37 +9999", "Thu, 01 Jan 1970 00:00:00 -0000", "31 Dec 9999 23:59:59 -2359"]))


@FUZZ
@given(headers=st.dictionaries(st.sampled_from(["If-Match", "If-None-Match", "If-Modified-Since",
                                                "If-Unmodified-Since"]), _http_date | st.text(max_size=20)),
       etag=st.text(max_size=10), modified=st.floats(0, 4e9))
def test_fuzz_conditional_headers(headers, etag, modified) -> None:
    request = SimpleNamespace(headers=CIMultiDict(headers))
    version = SimpleNamespace(etag=etag, last_modified=modified)
    only_s3_errors(check_conditions, request, version)
    for value in headers.values():
        only_s3_errors(etag_matches, value, etag)
        only_s3_errors(parse_http_date, value)


@FUZZ
@given(value=st.text(max_size=60))
def test_fuzz_tagging_header(value) -> None:
    only_s3_errors(parse_tagging_header, value)


def test_ranges_and_policies_take_ascii_digits_only() -> None:
    """Digits of other scripts are not numbers in HTTP or S3: a Range of them is ignored (the
    whole object, as S3 answers a Range it cannot parse), not served as bytes 0-3."""
    from objstore.node.app import parse_range as node_range
    from objstore.types import Policy

    assert parse_range("bytes=\u0660-\u0663", 10) is None
    assert parse_range("bytes=0-3", 10) == (0, 3)
    for bad in ("bytes=\u0660-\u0663", "bytes=\uff10-\uff13"):
        try:
            source_range(bad, 10)
        except ObjstoreError as err:
            assert err.code == "InvalidArgument"
        else:
            raise AssertionError(f"{bad!r} was accepted as a copy-source range")
        try:
            node_range(bad, 10)
        except ObjstoreError as err:
            assert err.code == "InvalidRange"
        else:
            raise AssertionError(f"{bad!r} was accepted by the storage node")
    for bad in ("replica:\u0663", "ec:\u0664+2"):
        try:
            Policy.parse(bad)
        except ObjstoreError as err:
            assert err.code == "InvalidArgument"
        else:
            raise AssertionError(f"policy {bad!r} was accepted")
