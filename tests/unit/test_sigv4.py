"""SigV4 verification: AWS's published vectors, S3 doc examples, real signers, tampering.

The real signers are botocore (``S3SigV4Auth``/``S3SigV4QueryAuth`` and a whole
boto3 client whose requests are captured before they leave the process) and
awscrt (the C signer of the AWS SDKs); nothing here talks to a network.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlsplit

import boto3
import pytest
from awscrt import auth as crt_auth
from awscrt import http as crt_http
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.auth import sigv4
from gateway.auth.sigv4 import (
    AuthContext,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    normalise_headers,
    sign,
    signing_key,
    string_to_sign,
    verify,
    verify_payload_sha256,
)
from objstore.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    NotImplementedOp,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
)

# --- helpers shared with test_streaming ------------------------------------------------------

ACCESS_KEY = "AKIDOBJSTORETEST"
SECRET_KEY = "s3cr3t/KEY+with=chars"
REGION = "us-east-1"
EMPTY = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Captured:
    """A signed request as a server would see it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)

    def amz_date(self) -> datetime:
        value = {k.lower(): v for k, v in self.headers}.get("x-amz-date")
        if value is None:
            value = dict(p.split("=", 1) for p in self.query.split("&") if "=" in p)["X-Amz-Date"]
        return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)

    def replace_header(self, name: str, value: str) -> Captured:
        hs = [(k, value if k.lower() == name.lower() else v) for k, v in self.headers]
        return Captured(self.method, self.path, self.query, hs, self.body)


def _text(v: str | bytes) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else v


def capture(request) -> Captured:
    """Turn a signed botocore request into what the server receives."""
    parts = urlsplit(request.url)
    headers = [(k, _text(v)) for k, v in request.headers.items()]
    if not any(k.lower() == "host" for k, _ in headers):
        headers.append(("Host", parts.netloc))
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    return Captured(request.method, parts.path, parts.query, headers, body or b"")


class _EmptyRaw:
    def stream(self, *args, **kwargs):
        yield b""


def capture_client(endpoint: str = "https://s3.example.test:9000", addressing: str = "path",
                   **config):
    """A boto3 S3 client whose signed requests are recorded into the returned list, not sent."""
    sent: list[Captured] = []

    def before_send(request, **kwargs):
        sent.append(capture(request))
        return AWSResponse(request.url, 200, {}, _EmptyRaw())

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(signature_version="s3v4", s3={"addressing_style": addressing},
                      retries={"max_attempts": 1}, **config))
    client.meta.events.register("before-send", before_send)
    return client, sent


def lookup(key: str) -> str | None:
    return SECRET_KEY if key == ACCESS_KEY else None


def verify_captured(c: Captured, now: datetime | None = None, **kw) -> AuthContext:
    return verify(c.method, c.path, c.query, CIMultiDict(c.headers), kw.pop("lookup", lookup),
                  now or c.amz_date() + timedelta(seconds=2), **kw)


def reference_signing_key(secret: str, date: str, region: str, service: str = "s3") -> bytes:
    """SigV4 key derivation written out independently of gateway.auth."""
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


# --- AWS Signature V4 test suite (generic service "service") --------------------------------

SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_DATE = "20150830T123600Z"
SUITE_SCOPE = "20150830/us-east-1/service/aws4_request"
HOST = ("Host", "example.amazonaws.com")
XDATE = ("X-Amz-Date", SUITE_DATE)


@dataclass(frozen=True)
class Vector:
    name: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    signed: str
    signature: str
    body: bytes = b""
    creq: str | None = None  # expected canonical request, when the suite gives it
    sts_hash: str | None = None  # last line of the expected string to sign
    normalise: bool = True  # the suite's "-unnormalized" cases use S3's path rules


VECTORS = [
    Vector("get-vanilla", "GET", "/", "", (HOST, XDATE), "host;x-amz-date",
           "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
           creq=f"GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:{SUITE_DATE}\n\nhost;x-amz-date\n{EMPTY}",
           sts_hash="bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"),
    Vector("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1", (HOST, XDATE),
           "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
           creq=f"GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
                f"x-amz-date:{SUITE_DATE}\n\nhost;x-amz-date\n{EMPTY}"),
    Vector("get-vanilla-query-order-encoded", "GET", "/", "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
           (HOST, XDATE), "host;x-amz-date",
           "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"),
    Vector("get-vanilla-query-unreserved", "GET", "/",
           "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
           "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
           (HOST, XDATE), "host;x-amz-date",
           "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"),
    Vector("get-vanilla-utf8-query", "GET", "/", "ሴ=bar", (HOST, XDATE), "host;x-amz-date",
           "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"),
    Vector("get-vanilla-empty-query-key", "GET", "/", "Param1=value1", (HOST, XDATE), "host;x-amz-date",
           "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"),
    Vector("get-header-value-trim", "GET", "/", "",
           (HOST, ("My-Header1", " value1"), ("My-Header2", ' "a   b   c"'), XDATE),
           "host;my-header1;my-header2;x-amz-date",
           "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
           creq=f'GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:"a b c"\n'
                f"x-amz-date:{SUITE_DATE}\n\nhost;my-header1;my-header2;x-amz-date\n{EMPTY}"),
    Vector("get-header-key-duplicate", "GET", "/", "",
           (HOST, ("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1"), XDATE),
           "host;my-header1;x-amz-date",
           "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"),
    Vector("get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
           "", (HOST, XDATE), "host;x-amz-date",
           "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"),
    Vector("get-utf8", "GET", "/ሴ", "", (HOST, XDATE), "host;x-amz-date",
           "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
           creq=f"GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:{SUITE_DATE}\n\n"
                f"host;x-amz-date\n{EMPTY}"),
    Vector("get-space-normalized", "GET", "/example space/", "", (HOST, XDATE), "host;x-amz-date",
           "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"),
    Vector("get-slashes-normalized", "GET", "//example//", "", (HOST, XDATE), "host;x-amz-date",
           "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"),
    Vector("get-slashes-unnormalized", "GET", "//example//", "", (HOST, XDATE), "host;x-amz-date",
           "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5", normalise=False),
    Vector("get-slash-dot-slash-normalized", "GET", "/./", "", (HOST, XDATE), "host;x-amz-date",
           "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    Vector("get-relative-relative-normalized", "GET", "/example1/example2/../..", "", (HOST, XDATE),
           "host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    Vector("post-vanilla-query", "POST", "/", "Param1=value1", (HOST, XDATE), "host;x-amz-date",
           "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    Vector("post-header-key-sort", "POST", "/", "", (HOST, ("My-Header1", "value1"), XDATE),
           "host;my-header1;x-amz-date",
           "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    Vector("post-x-www-form-urlencoded", "POST", "/", "",
           (("Content-Type", "application/x-www-form-urlencoded"), HOST, ("Content-Length", "13"),
            ("x-amz-content-sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"),
            XDATE),
           "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
           "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b", body=b"Param1=value1"),
]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_aws_sigv4_suite_vector(v: Vector) -> None:
    signed = v.signed.split(";")
    headers = normalise_headers(CIMultiDict(v.headers))
    creq = canonical_request(v.method, canonical_uri(v.path, s3=not v.normalise), canonical_query(v.query),
                             canonical_headers(headers, signed), signed, hashlib.sha256(v.body).hexdigest())
    if v.creq is not None:
        assert creq == v.creq
    sts = string_to_sign(SUITE_DATE, SUITE_SCOPE, creq)
    assert sts.split("\n")[:3] == ["AWS4-HMAC-SHA256", SUITE_DATE, SUITE_SCOPE]
    if v.sts_hash is not None:
        assert sts.split("\n")[3] == v.sts_hash
    key = signing_key(SUITE_SECRET, "20150830", "us-east-1", "service")
    assert key == reference_signing_key(SUITE_SECRET, "20150830", "us-east-1", "service")
    assert sign(key, sts) == v.signature


def test_suite_generic_and_s3_path_rules_differ() -> None:
    # The generic rules normalise and encode the path as sent; S3 rules keep it verbatim.
    assert canonical_uri("//example//", s3=False) == "/example/"
    assert canonical_uri("//example//", s3=True) == "//example//"
    assert canonical_uri("/a/./b/../c", s3=False) == "/a/c"
    assert canonical_uri("/a/./b/../c", s3=True) == "/a/./b/../c"
    assert canonical_uri("/a%20b", s3=False) == "/a%2520b"  # double encoding
    assert canonical_uri("/a%20b", s3=True) == "/a%20b"
    assert canonical_uri("/a%2Fb/c d", s3=True) == "/a%2Fb/c%20d"
    assert canonical_uri("/%7e%21", s3=True) == "/~%21"


@pytest.mark.parametrize("name,query,canonical,sts_hash", [
    # Presigned-form vectors of the suite (X-Amz-Signature excluded from the canonical query).
    ("get-vanilla-query-order-key-case",
     "Param2=value2&Param1=value1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
     "AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z"
     "&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
     "Param1=value1&Param2=value2&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
     "AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z"
     "&X-Amz-SignedHeaders=host",
     "eb1512f5ed1470925b7b1072c2108953680032d6bc3ccbef8eb7c6fdf1639827"),
])
def test_suite_presigned_canonical_query(name: str, query: str, canonical: str, sts_hash: str) -> None:
    got = canonical_query(query, exclude=["X-Amz-Signature"])
    assert got == canonical
    creq = canonical_request("GET", "/", got, "host:example.amazonaws.com\n", ["host"], EMPTY)
    assert string_to_sign(SUITE_DATE, SUITE_SCOPE, creq).split("\n")[3] == sts_hash


@pytest.mark.parametrize("path,query,signature", [
    ("/", "Param2=value2&Param1=value1", "86012e2c9ad4d77369f5d81c11f75158aae4f895a085212cc6d3f923d300bed5"),
    ("/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "",
     "95968482db1b9e0fadef6efc1bd24689f77c77d9ef56919c96a28cc92e0d6005"),
])
def test_suite_presigned_signature(path: str, query: str, signature: str) -> None:
    auth = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1"
            "%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host"
            f"&X-Amz-Expires=3600&X-Amz-Signature={signature}")
    full = f"{query}&{auth}" if query else auth
    parsed = sigv4.parse_request("GET", path, full, {"Host": "example.amazonaws.com"},
                                 datetime(2015, 8, 30, 12, 40, tzinfo=timezone.utc), service="service")
    # The generic service signs the (empty) payload hash rather than UNSIGNED-PAYLOAD.
    parsed = sigv4.ParsedRequest(**{**parsed.__dict__, "payload_hash": EMPTY})
    ctx = sigv4.check_signature(parsed, SUITE_SECRET)
    assert ctx.presigned and ctx.seed_signature == signature


# --- S3 documentation examples (examplebucket, 20130524) -------------------------------------

DOC_AK = "AKIAIOSFODNN7EXAMPLE"
DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_NOW = datetime(2013, 5, 24, 0, 3, tzinfo=timezone.utc)


def doc_lookup(key: str) -> str | None:
    return DOC_SECRET if key == DOC_AK else None


def doc_auth(signed: str, signature: str) -> str:
    return (f"AWS4-HMAC-SHA256 Credential={DOC_AK}/20130524/us-east-1/s3/aws4_request,"
            f"SignedHeaders={signed},Signature={signature}")


def test_s3_doc_get_object_with_range() -> None:
    headers = {"Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9",
               "x-amz-content-sha256": EMPTY, "x-amz-date": "20130524T000000Z",
               "Authorization": doc_auth("host;range;x-amz-content-sha256;x-amz-date",
                                         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")}
    parsed = sigv4.parse_request("GET", "/test.txt", "", headers, DOC_NOW)
    [creq, *_] = sigv4.canonical_request_candidates(parsed)
    assert creq == ("GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
                    f"x-amz-content-sha256:{EMPTY}\nx-amz-date:20130524T000000Z\n\n"
                    f"host;range;x-amz-content-sha256;x-amz-date\n{EMPTY}")
    assert string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request", creq).endswith(
        "\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972")
    ctx = verify("GET", "/test.txt", "", headers, doc_lookup, DOC_NOW)
    assert ctx.payload_mode == "signed" and ctx.content_sha256 == EMPTY and not ctx.presigned
    assert ctx.scope == "20130524/us-east-1/s3/aws4_request" and ctx.region == "us-east-1"
    verify_payload_sha256(ctx, EMPTY)
    with pytest.raises(XAmzContentSHA256Mismatch):
        verify_payload_sha256(ctx, hashlib.sha256(b"x").hexdigest())


def test_s3_doc_put_object_with_date_header_and_dollar_in_key() -> None:
    body = b"Welcome to Amazon S3."
    headers = {"Host": "examplebucket.s3.amazonaws.com", "Date": "Fri, 24 May 2013 00:00:00 GMT",
               "x-amz-storage-class": "REDUCED_REDUNDANCY",
               "x-amz-content-sha256": hashlib.sha256(body).hexdigest(), "x-amz-date": "20130524T000000Z",
               "Authorization": doc_auth("date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                                         "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")}
    ctx = verify("PUT", "/test%24file.text", "", headers, doc_lookup, DOC_NOW)
    verify_payload_sha256(ctx, hashlib.sha256(body).hexdigest())


@pytest.mark.parametrize("query,signature", [
    ("lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
    ("max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
])
def test_s3_doc_bucket_gets(query: str, signature: str) -> None:
    headers = {"Host": "examplebucket.s3.amazonaws.com", "x-amz-content-sha256": EMPTY,
               "x-amz-date": "20130524T000000Z",
               "Authorization": doc_auth("host;x-amz-content-sha256;x-amz-date", signature)}
    verify("GET", "/", query, headers, doc_lookup, DOC_NOW)


DOC_PRESIGNED = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"
                 "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
                 "&X-Amz-SignedHeaders=host&X-Amz-Signature="
                 "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")


def test_s3_doc_presigned_url() -> None:
    host = {"Host": "examplebucket.s3.amazonaws.com"}
    ctx = verify("GET", "/test.txt", DOC_PRESIGNED, host, doc_lookup, DOC_NOW)
    assert ctx.presigned and ctx.payload_mode == "unsigned" and ctx.content_sha256 is None
    # Valid until 86400 s after X-Amz-Date, not a second longer.
    verify("GET", "/test.txt", DOC_PRESIGNED, host, doc_lookup, DOC_NOW + timedelta(hours=23, minutes=56))
    with pytest.raises(AccessDenied, match="Request has expired"):
        verify("GET", "/test.txt", DOC_PRESIGNED, host, doc_lookup,
               datetime(2013, 5, 25, 0, 0, 1, tzinfo=timezone.utc))
    with pytest.raises(AccessDenied, match="not valid yet"):
        verify("GET", "/test.txt", DOC_PRESIGNED, host, doc_lookup, datetime(2013, 5, 23, 23, 40, tzinfo=timezone.utc))
    with pytest.raises(SignatureDoesNotMatch):
        verify("GET", "/test.txt", DOC_PRESIGNED.replace("86400", "86401"), host, doc_lookup, DOC_NOW)
    with pytest.raises(SignatureDoesNotMatch):
        verify("GET", "/test.txt", DOC_PRESIGNED, {"Host": "otherbucket.s3.amazonaws.com"}, doc_lookup, DOC_NOW)


def test_s3_doc_chunked_upload_seed_signature() -> None:
    headers = {"Host": "s3.amazonaws.com", "x-amz-date": "20130524T000000Z",
               "x-amz-storage-class": "REDUCED_REDUNDANCY",
               "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": "66560", "Content-Length": "66824",
               "Authorization": doc_auth("content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
                                         "x-amz-decoded-content-length;x-amz-storage-class",
                                         "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9")}
    ctx = verify("PUT", "/examplebucket/chunkObject.txt", "", headers, doc_lookup, DOC_NOW)
    assert ctx.payload_mode == "streaming-signed" and ctx.content_sha256 is None
    assert ctx.seed_signature == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    assert ctx.signing_key == reference_signing_key(DOC_SECRET, "20130524", "us-east-1")
    assert ctx.amz_date == "20130524T000000Z"
    verify_payload_sha256(ctx, "anything")  # not a "signed" payload: nothing to compare
    assert "signing_key" not in repr(ctx)


# --- round trips with botocore's own signers ------------------------------------------------

def botocore_signed(method: str, url: str, headers: dict | None = None, body: bytes = b"",
                    presign: int | None = None, secret: str = SECRET_KEY) -> Captured:
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    creds = Credentials(ACCESS_KEY, secret)
    signer = S3SigV4QueryAuth(creds, "s3", REGION, expires=presign) if presign else S3SigV4Auth(creds, "s3", REGION)
    signer.add_auth(request)
    return capture(request.prepare())


KEYS = [
    "plain.txt", "key with spaces", "unicodé/ключ/日本語", "a+b=c&d", "tilde~under_score-dash.dot",
    "dots/../../escape", "./leading/dot", "double//slash", "trailing/", "percent%20literal",
    "!$&'()*,;:@", "#hash?question", "emoji/😀", "a" * 300,
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("style", ["path", "virtual"])
def test_botocore_header_signing_round_trip(key: str, style: str) -> None:
    encoded = quote(key, safe="/~")  # how botocore's S3 serializer puts a key in the URL
    url = (f"http://s3.example.test:9000/bucket/{encoded}" if style == "path"
           else f"http://bucket.s3.example.test:9000/{encoded}")
    body = b"payload bytes"
    c = botocore_signed("PUT", url + "?tagging=&versionId=v%2B1%3D", {"Content-Type": "text/plain"}, body)
    ctx = verify_captured(c, region=REGION)
    assert ctx.access_key == ACCESS_KEY and ctx.payload_mode == "signed"
    verify_payload_sha256(ctx, hashlib.sha256(body).hexdigest())


@pytest.mark.parametrize("key", KEYS)
def test_botocore_presigned_round_trip(key: str) -> None:
    url = f"https://s3.example.test/bucket/{quote(key, safe='/~')}?response-content-type=text%2Fplain&x-id=GetObject"
    c = botocore_signed("GET", url, presign=600)
    ctx = verify_captured(c)
    assert ctx.presigned and ctx.payload_mode == "unsigned"
    with pytest.raises(AccessDenied, match="expired"):
        verify_captured(c, now=c.amz_date() + timedelta(seconds=601))


def test_botocore_query_params_and_empty_values() -> None:
    c = botocore_signed("GET", "http://s3.example.test/bucket?list-type=2&prefix=a%20b%2Bc&delimiter=%2F"
                               "&continuation-token=&fetch-owner=true&encoding-type=url")
    verify_captured(c)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.text(min_size=1, max_size=40), value=st.text(max_size=20), presign=st.booleans())
def test_botocore_round_trip_arbitrary_keys(key: str, value: str, presign: bool) -> None:
    key = key.replace("\x00", "")  # S3 keys cannot hold NUL
    if not key:
        return
    url = (f"https://s3.example.test/bkt/{quote(key.encode('utf-8', 'surrogatepass'), safe='/~')}"
           f"?prefix={quote(value.encode('utf-8', 'surrogatepass'), safe='-_.~')}")
    c = botocore_signed("GET", url, presign=300 if presign else None)
    verify_captured(c)


# --- the whole boto3 client, captured before sending ----------------------------------------

def test_boto3_client_requests_verify() -> None:
    client, sent = capture_client(addressing="virtual")
    client.put_object(Bucket="bkt", Key="dir/ü ~+=&.txt", Body=b"x" * 1000, Metadata={"k": "v  w"})
    client.list_objects_v2(Bucket="bkt", Prefix="a b/", Delimiter="/", StartAfter="é")
    client.get_object(Bucket="bkt", Key="dir/../x", Range="bytes=0-9")
    client.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}]})
    client.head_bucket(Bucket="bkt")
    assert len(sent) == 5
    modes = [verify_captured(c).payload_mode for c in sent]
    assert modes[0] == "streaming-unsigned-trailer"  # https + flexible checksum -> trailer
    assert set(modes[1:]) <= {"signed", "unsigned"}


def test_boto3_http_endpoint_signs_payload() -> None:
    client, sent = capture_client(endpoint="http://127.0.0.1:9000")
    client.put_object(Bucket="bkt", Key="k", Body=b"hello")
    ctx = verify_captured(sent[0])
    assert ctx.payload_mode == "signed"
    verify_payload_sha256(ctx, hashlib.sha256(sent[0].body).hexdigest())


def test_boto3_presigned_urls_verify() -> None:
    client, _ = capture_client()
    for method, params in [("get_object", {"Bucket": "bkt", "Key": "a b/ü+.txt"}),
                           ("put_object", {"Bucket": "bkt", "Key": "up~load", "ContentType": "text/plain"})]:
        url = client.generate_presigned_url(method, Params=params, ExpiresIn=120)
        parts = urlsplit(url)
        c = Captured("GET" if method == "get_object" else "PUT", parts.path, parts.query,
                     [("Host", parts.netloc)] + ([("Content-Type", "text/plain")] if method == "put_object" else []),
                     b"")
        assert verify_captured(c).presigned


def test_boto3_sigv2_presigned_url_is_refused() -> None:
    client = boto3.client("s3", endpoint_url="https://s3.example.test", region_name=REGION,
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                          config=Config(signature_version="s3"))
    parts = urlsplit(client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"}))
    with pytest.raises(AccessDenied, match="Version 2"):
        verify("GET", parts.path, parts.query, {"Host": parts.netloc}, lookup, datetime.now(timezone.utc))


# --- the C signer of the AWS SDKs (awscrt / aws-c-auth) --------------------------------------

@pytest.mark.parametrize("query_form", [False, True])
def test_awscrt_signer_round_trip(query_form: bool) -> None:
    when = datetime(2024, 2, 29, 23, 59, 59, tzinfo=timezone.utc)
    path = "/bkt/%E2%82%AC%20sign/a%2Bb"
    request = crt_http.HttpRequest("PUT", path + "?uploads=&x-id=Create%20Upload", crt_http.HttpHeaders(
        [("Host", "s3.example.test"), ("Content-Type", "application/octet-stream"),
         ("X-Amz-Meta-Note", "  two   spaces  ")]))
    config = crt_auth.AwsSigningConfig(
        signature_type=(crt_auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS if query_form
                        else crt_auth.AwsSignatureType.HTTP_REQUEST_HEADERS),
        credentials_provider=crt_auth.AwsCredentialsProvider.new_static(ACCESS_KEY, SECRET_KEY),
        region=REGION, service="s3", date=when, use_double_uri_encode=False,
        should_normalize_uri_path=False, signed_body_value=crt_auth.AwsSignedBodyValue.UNSIGNED_PAYLOAD,
        signed_body_header_type=(crt_auth.AwsSignedBodyHeaderType.NONE if query_form
                                 else crt_auth.AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256),
        expiration_in_seconds=900 if query_form else None)
    crt_auth.aws_sign_request(request, config).result(timeout=10)
    raw_path, _, raw_query = request.path.partition("?")
    headers = CIMultiDict(list(request.headers))
    ctx = verify("PUT", raw_path, raw_query, headers, lookup, when + timedelta(minutes=1), region=REGION)
    assert ctx.payload_mode == "unsigned" and ctx.presigned == query_form
    with pytest.raises(SignatureDoesNotMatch):
        verify("PUT", raw_path.replace("a%2Bb", "a%2Bc"), raw_query, headers, lookup, when)


# --- tampering -------------------------------------------------------------------------------

@pytest.fixture
def signed_put() -> Captured:
    return botocore_signed("PUT", "http://s3.example.test/bucket/some%20key?partNumber=1&uploadId=abc",
                           {"Content-Type": "text/plain", "X-Amz-Meta-Color": "blue"}, b"body")


def test_untampered_request_verifies(signed_put: Captured) -> None:
    verify_captured(signed_put)
    # Unsigned extra headers do not matter.
    extra = Captured(signed_put.method, signed_put.path, signed_put.query,
                     signed_put.headers + [("User-Agent", "curl"), ("X-Forwarded-For", "1.2.3.4")], b"")
    verify_captured(extra)


@pytest.mark.parametrize("tamper", [
    lambda c: Captured("POST", c.path, c.query, c.headers, c.body),
    lambda c: Captured(c.method, c.path + "2", c.query, c.headers, c.body),
    lambda c: Captured(c.method, c.path.replace("some", "Some"), c.query, c.headers, c.body),
    lambda c: Captured(c.method, c.path, c.query.replace("partNumber=1", "partNumber=2"), c.headers, c.body),
    lambda c: Captured(c.method, c.path, c.query + "&acl", c.headers, c.body),
    lambda c: Captured(c.method, c.path, "uploadId=abc", c.headers, c.body),
    lambda c: c.replace_header("Content-Type", "text/html"),
    lambda c: c.replace_header("X-Amz-Meta-Color", "red"),
    lambda c: c.replace_header("Host", "evil.example.test"),
    lambda c: c.replace_header("X-Amz-Content-SHA256", hashlib.sha256(b"other").hexdigest()),
    lambda c: c.replace_header("X-Amz-Date", (c.amz_date() + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")),
    lambda c: Captured(c.method, c.path, c.query,
                       [(k, v) for k, v in c.headers if k.lower() != "x-amz-meta-color"], c.body),
    lambda c: c.replace_header("Authorization", c.header_dict["Authorization"][:-4] + "0000"),
], ids=["method", "path", "path-case", "query-value", "query-added", "query-removed", "content-type",
        "meta-header", "host", "payload-hash", "date", "signed-header-removed", "signature"])
def test_tampered_request_is_rejected(signed_put: Captured, tamper) -> None:
    with pytest.raises(SignatureDoesNotMatch):
        verify_captured(tamper(signed_put), now=signed_put.amz_date())


def test_wrong_secret_and_unknown_key(signed_put: Captured) -> None:
    with pytest.raises(SignatureDoesNotMatch):
        verify_captured(signed_put, lookup=lambda k: "another-secret")
    with pytest.raises(InvalidAccessKeyId) as err:
        verify_captured(signed_put, lookup=lambda k: None)
    assert err.value.extra["AWSAccessKeyId"] == ACCESS_KEY


def test_clock_skew(signed_put: Captured) -> None:
    t = signed_put.amz_date()
    verify_captured(signed_put, now=t + timedelta(minutes=14, seconds=59))
    verify_captured(signed_put, now=t - timedelta(minutes=14, seconds=59))
    for now in (t + timedelta(minutes=15, seconds=1), t - timedelta(minutes=15, seconds=1)):
        with pytest.raises(RequestTimeTooSkewed):
            verify_captured(signed_put, now=now)
    with pytest.raises(RequestTimeTooSkewed):
        verify_captured(signed_put, now=t + timedelta(minutes=2), max_skew=timedelta(minutes=1))
    verify_captured(signed_put, now=(t + timedelta(minutes=1)).replace(tzinfo=None))  # naive = UTC


def test_presigned_expiry_limits() -> None:
    c = botocore_signed("GET", "https://s3.example.test/b/k", presign=604800)
    verify_captured(c, now=c.amz_date() + timedelta(days=6, hours=23))
    with pytest.raises(AccessDenied, match="expired"):
        verify_captured(c, now=c.amz_date() + timedelta(days=7, seconds=1))
    too_long = botocore_signed("GET", "https://s3.example.test/b/k", presign=604801)
    with pytest.raises(InvalidArgument, match="604800"):
        verify_captured(too_long)


def test_presigned_tampered_and_conflicting() -> None:
    c = botocore_signed("GET", "https://s3.example.test/b/k", presign=60)
    with pytest.raises(SignatureDoesNotMatch):
        verify_captured(Captured("GET", c.path, c.query.replace("X-Amz-Expires=60", "X-Amz-Expires=600"),
                                 c.headers, b""))
    with pytest.raises(SignatureDoesNotMatch):
        verify_captured(Captured("DELETE", c.path, c.query, c.headers, b""))
    both = Captured("GET", c.path, c.query, c.headers + [("Authorization", "AWS4-HMAC-SHA256 x")], b"")
    with pytest.raises(InvalidArgument, match="one auth mechanism"):
        verify_captured(both)
    missing = "&".join(p for p in c.query.split("&") if not p.startswith("X-Amz-Expires"))
    with pytest.raises(InvalidArgument, match="X-Amz-Expires"):
        verify_captured(Captured("GET", c.path, missing, c.headers, b""))


# --- malformed and unsupported authentication -------------------------------------------------

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
AMZ_NOW = NOW.strftime("%Y%m%dT%H%M%SZ")


def _headers(authorization: str, **extra: str) -> dict[str, str]:
    return {"Host": "s3.example.test", "x-amz-date": AMZ_NOW, "x-amz-content-sha256": EMPTY,
            "Authorization": authorization, **extra}


GOOD_CRED = f"{ACCESS_KEY}/{AMZ_NOW[:8]}/us-east-1/s3/aws4_request"


@pytest.mark.parametrize("authorization,error,match", [
    ("AWS AKID:c2lnbmF0dXJl", AccessDenied, "Version 2"),
    ("AWS4-ECDSA-P256-SHA256 Credential=x", NotImplementedOp, "4A"),
    ("Bearer token", AuthorizationHeaderMalformed, "Unsupported"),
    ("AWS4-HMAC-SHA256 garbage", AuthorizationHeaderMalformed, "malformed"),
    (f"AWS4-HMAC-SHA256 Credential={GOOD_CRED}, SignedHeaders=host", AuthorizationHeaderMalformed, "Signature"),
    ("AWS4-HMAC-SHA256 Credential=onlykey, SignedHeaders=host, Signature=ab", AuthorizationHeaderMalformed,
     "credential"),
    (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{AMZ_NOW[:8]}/us-east-1/s3/aws5_request, SignedHeaders=host, "
     "Signature=ab", AuthorizationHeaderMalformed, "terminal"),
    (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{AMZ_NOW[:8]}/us-east-1/ec2/aws4_request, SignedHeaders=host, "
     "Signature=ab", AuthorizationHeaderMalformed, "service"),
    (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20000101/us-east-1/s3/aws4_request, SignedHeaders=host, "
     "Signature=ab", AuthorizationHeaderMalformed, "date"),
    (f"AWS4-HMAC-SHA256 Credential={GOOD_CRED}, SignedHeaders=x-amz-date, Signature=ab",
     AuthorizationHeaderMalformed, "host"),
])
def test_malformed_authorization(authorization: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        verify("GET", "/b/k", "", _headers(authorization), lookup, NOW)


def test_region_is_checked_when_configured() -> None:
    c = botocore_signed("GET", "http://s3.example.test/b/k")
    verify_captured(c, region="us-east-1")
    with pytest.raises(AuthorizationHeaderMalformed, match="us-west-2"):
        verify_captured(c, region="us-west-2")


def test_anonymous_and_bad_dates_are_denied() -> None:
    with pytest.raises(AccessDenied, match="Anonymous"):
        verify("GET", "/b/k", "", {"Host": "s3.example.test"}, lookup, NOW)
    auth = f"AWS4-HMAC-SHA256 Credential={GOOD_CRED}, SignedHeaders=host, Signature=ab"
    with pytest.raises(AccessDenied, match="x-amz-date"):
        verify("GET", "/b/k", "", {"Host": "h", "Authorization": auth, "x-amz-content-sha256": EMPTY},
               lookup, NOW)
    with pytest.raises(AccessDenied, match="x-amz-date"):
        verify("GET", "/b/k", "", _headers(auth, **{"x-amz-date": "2025-01-02"}), lookup, NOW)


def test_payload_hash_header_rules() -> None:
    auth = f"AWS4-HMAC-SHA256 Credential={GOOD_CRED}, SignedHeaders=host, Signature=ab"
    h = _headers(auth)
    del h["x-amz-content-sha256"]
    with pytest.raises(InvalidRequest, match="x-amz-content-sha256"):
        verify("GET", "/b/k", "", h, lookup, NOW)
    with pytest.raises(InvalidArgument, match="x-amz-content-sha256"):
        verify("GET", "/b/k", "", _headers(auth, **{"x-amz-content-sha256": "nothex"}), lookup, NOW)
    with pytest.raises(NotImplementedOp):
        verify("GET", "/b/k", "", _headers(auth, **{"x-amz-content-sha256":
                                                    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"}), lookup, NOW)


@pytest.mark.parametrize("value,mode", [
    ("UNSIGNED-PAYLOAD", "unsigned"),
    ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "streaming-signed"),
    ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "streaming-signed-trailer"),
    ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "streaming-unsigned-trailer"),
    (hashlib.sha256(b"abc").hexdigest().upper(), "signed"),
])
def test_payload_modes(value: str, mode: str) -> None:
    # S3SigV4Auth computes the header from the body; make it sign the value under test.
    request = AWSRequest(method="PUT", url="http://s3.example.test/b/k", headers={})
    request.context["payload_signing_enabled"] = True

    class KeepPayload(S3SigV4Auth):
        def payload(self, request):
            return value

    KeepPayload(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    c = capture(request.prepare())
    ctx = verify_captured(c)
    assert ctx.payload_mode == mode
    assert ctx.content_sha256 == (value.lower() if mode == "signed" else None)


def test_multidict_headers_and_case_insensitivity() -> None:
    request = AWSRequest(method="GET", url="http://s3.example.test/b/k",
                         headers={"X-Amz-Meta-Tag": "a"})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    c = capture(request.prepare())
    lowered = {k.lower(): v for k, v in c.headers}
    upper = {k.upper(): v for k, v in c.headers}
    for hs in (lowered, upper, CIMultiDict(c.headers)):
        verify(c.method, c.path, c.query, hs, lookup, c.amz_date())


def test_raw_path_with_embedded_query_is_split() -> None:
    c = botocore_signed("GET", "http://s3.example.test/b/k?versionId=3")
    verify(c.method, f"{c.path}?{c.query}", "", CIMultiDict(c.headers), lookup, c.amz_date())


def test_non_standard_client_encoding_still_verifies() -> None:
    # A client that leaves '!' and '*' unencoded and signs the path exactly as sent.
    amz = AMZ_NOW
    path, query = "/bucket/it's!*(x)", "marker=a!b&prefix=x*y"
    headers = {"host": "s3.example.test", "x-amz-content-sha256": EMPTY, "x-amz-date": amz}
    signed = ["host", "x-amz-content-sha256", "x-amz-date"]
    creq = canonical_request("GET", path, "marker=a!b&prefix=x*y",
                             canonical_headers(normalise_headers(headers), signed), signed, EMPTY)
    key = reference_signing_key(SECRET_KEY, amz[:8], REGION)
    scope = f"{amz[:8]}/{REGION}/s3/aws4_request"
    sig = hmac.new(key, string_to_sign(amz, scope, creq).encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={sig}")
    verify("GET", path, query, headers, lookup, NOW)


def test_signing_key_matches_reference_and_is_cached() -> None:
    signing_key.cache_clear()
    a = signing_key(SECRET_KEY, "20250102", REGION, "s3")
    b = signing_key(SECRET_KEY, "20250102", REGION, "s3")
    assert a == b == reference_signing_key(SECRET_KEY, "20250102", REGION)
    assert signing_key.cache_info().hits >= 1


def test_repeated_verification_derives_the_signing_key_once() -> None:
    # The HMAC chain of the signing key is per secret and day, not per request.
    from gateway.auth import sigv4
    c = botocore_signed("GET", "http://s3.example.test/bucket/dir/object.bin?versionId=1",
                        {"Range": "bytes=0-99"})
    headers = CIMultiDict(c.headers)
    now = c.amz_date()
    verify(c.method, c.path, c.query, headers, lookup, now)
    before = sigv4.signing_key.cache_info()
    for _ in range(200):
        verify(c.method, c.path, c.query, headers, lookup, now)
    after = sigv4.signing_key.cache_info()
    assert after.misses == before.misses
    assert after.hits >= before.hits + 200


def test_date_header_instead_of_x_amz_date() -> None:
    # botocore signs with the Date header (and drops X-Amz-Date) when the request carries one.
    c = botocore_signed("GET", "http://s3.example.test/b/k", {"Date": "placeholder"})
    assert "x-amz-date" not in {k.lower() for k, _ in c.headers}
    when = parsedate_to_datetime(c.header_dict["Date"]).astimezone(timezone.utc)
    ctx = verify_captured(c, now=when + timedelta(seconds=5))
    assert ctx.amz_date == when.strftime("%Y%m%dT%H%M%SZ")
    with pytest.raises(RequestTimeTooSkewed):
        verify_captured(c, now=when + timedelta(hours=1))


def test_split_api_allows_fetching_the_secret_in_between() -> None:
    c = botocore_signed("GET", "http://s3.example.test/b/k")
    parsed = sigv4.parse_request(c.method, c.path, c.query, CIMultiDict(c.headers), c.amz_date())
    assert parsed.access_key == ACCESS_KEY and parsed.region == REGION and not parsed.presigned
    assert sigv4.check_signature(parsed, SECRET_KEY).access_key == ACCESS_KEY
    with pytest.raises(SignatureDoesNotMatch):
        sigv4.check_signature(parsed, "wrong")
