"""Pure parts of CopyObject and DeleteObjects, and the keepalive answer of long copies."""
from __future__ import annotations

import asyncio
import hashlib
import xml.etree.ElementTree as ET

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.handlers import batch_delete as bd
from gateway.handlers import copy as cp
from gateway.unsupported import refuse_unsupported_headers
from metadata.api.results import DeleteResult
from objstore.errors import (
    InternalError, InvalidArgument, MalformedXML, NoSuchKey, NotImplementedOp, PreconditionFailed,
)
from objstore.types import ObjectVersion

ETAG = "0123456789abcdef0123456789abcdef"
MON = "Mon, 02 Jan 2023 00:00:00 GMT"  # 1672617600
T = 1672617600.5


# --- copy source and directives ---------------------------------------------------------

@pytest.mark.parametrize("value,want", [
    ("b/k", cp.CopySource("b", "k")),
    ("/b/k", cp.CopySource("b", "k")),
    ("/b/dir/with%20space/%C3%BC", cp.CopySource("b", "dir/with space/ü")),
    ("b/q%3Fmark?versionId=01a216d0f43c0000-gw1", cp.CopySource("b", "q?mark", "01a216d0f43c0000-gw1")),
    ("b/k?versionId=null", cp.CopySource("b", "k", "null")),
    ("b/a//b/", cp.CopySource("b", "a//b/")),
    ("b/plus+sign", cp.CopySource("b", "plus+sign")),
])
def test_parse_copy_source(value, want):
    assert cp.parse_copy_source(value) == want


@pytest.mark.parametrize("value", ["b", "/b", "b/", "/", "", "b/k?versionId=", "b/k?versionId=v1", "b/k?other=1",
                                   "b/%FF"])
def test_bad_copy_sources(value):
    with pytest.raises(InvalidArgument):
        cp.parse_copy_source(value)


def test_access_point_sources_are_not_implemented():
    with pytest.raises(NotImplementedOp):
        cp.parse_copy_source("arn:aws:s3:us-west-2:123456789012:accesspoint/ap/object/k")


def test_directives():
    assert cp.metadata_directive({}) == "COPY"
    assert cp.metadata_directive({"x-amz-metadata-directive": "replace"}) == "REPLACE"
    with pytest.raises(InvalidArgument):
        cp.metadata_directive({"x-amz-metadata-directive": "MERGE"})
    assert cp.tagging_directive({}) == "COPY"
    assert cp.tagging_directive({"x-amz-tagging-directive": "REPLACE"}) == "REPLACE"
    with pytest.raises(InvalidArgument):
        cp.tagging_directive({"x-amz-tagging-directive": "KEEP"})


def test_predicted_version_header():
    from objstore.types import Bucket

    assert cp.predicted_version_header(Bucket("b", "o", 0.0), "v") == {}
    assert cp.predicted_version_header(Bucket("b", "o", 0.0, versioning="Enabled"), "v") == {"x-amz-version-id": "v"}
    assert cp.predicted_version_header(Bucket("b", "o", 0.0, versioning="Suspended"), "v") == {
        "x-amz-version-id": "null"}


# --- copy conditions --------------------------------------------------------------------

@pytest.mark.parametrize("headers,fails", [
    ({}, False),
    ({"x-amz-copy-source-if-match": f'"{ETAG}"'}, False),
    ({"x-amz-copy-source-if-match": f'"x", "{ETAG}"'}, False),
    ({"x-amz-copy-source-if-match": '"other"'}, True),
    ({"x-amz-copy-source-if-none-match": f'"{ETAG}"'}, True),
    ({"x-amz-copy-source-if-none-match": "*"}, True),
    ({"x-amz-copy-source-if-none-match": '"other"'}, False),
    ({"x-amz-copy-source-if-modified-since": MON}, True),  # modified at MON: not since
    ({"x-amz-copy-source-if-modified-since": "Sun, 01 Jan 2023 00:00:00 GMT"}, False),
    ({"x-amz-copy-source-if-unmodified-since": MON}, False),
    ({"x-amz-copy-source-if-unmodified-since": "Sun, 01 Jan 2023 00:00:00 GMT"}, True),
    ({"x-amz-copy-source-if-unmodified-since": "not a date"}, False),
    # If-Match decides over If-Unmodified-Since; If-None-Match over If-Modified-Since.
    ({"x-amz-copy-source-if-match": ETAG, "x-amz-copy-source-if-unmodified-since": "Sun, 01 Jan 2023 00:00:00 GMT"}, False),
    ({"x-amz-copy-source-if-none-match": '"other"', "x-amz-copy-source-if-modified-since": MON}, False),
])
def test_copy_conditions(headers, fails):
    if fails:
        with pytest.raises(PreconditionFailed):
            cp.check_copy_conditions(headers, ETAG, T)
    else:
        cp.check_copy_conditions(headers, ETAG, T)


# --- the source stream ------------------------------------------------------------------

async def _chunks(*parts: bytes):
    for p in parts:
        yield p


async def _drain(stream: cp.SourceStream) -> list[bytes]:
    return [c async for c in stream.chunks()]


async def test_source_stream_verifies_and_holds_back_the_last_chunk():
    data = [b"abc", b"", b"def", b"gh"]
    md5 = hashlib.md5(b"abcdefgh").hexdigest()
    s = cp.SourceStream(_chunks(*data), 8, md5, ["crc32"])
    assert await _drain(s) == [b"abc", b"def", b"gh"]
    assert s.etag == md5 and set(s.checksum_values) == {"crc32"}

    seen: list[bytes] = []
    bad = cp.SourceStream(_chunks(b"abc", b"xyz"), 6, hashlib.md5(b"abcdef").hexdigest(), [])
    with pytest.raises(InternalError):
        async for c in bad.chunks():
            seen.append(c)
    assert seen == [b"abc"]  # the tail never went out


@pytest.mark.parametrize("parts,size", [([b"abc"], 4), ([b"abcde"], 4)])
async def test_source_stream_length_must_match(parts, size):
    with pytest.raises(InternalError):
        await _drain(cp.SourceStream(_chunks(*parts), size, None, []))


def test_multipart_etags_are_not_md5s():
    assert cp.single_part_md5(ETAG) == ETAG
    assert cp.single_part_md5(ETAG + "-3") is None


def test_copied_record_is_a_fresh_single_part_version():
    src = ObjectVersion("b", "k", "v1", 10, ETAG + "-2", 1.0, content_type="text/plain", user_meta={"a": "1"},
                        delete_marker=True, tags={"t": "1"}, versioned=True)
    rec = cp.copied_record(src, bucket="b2", key="k2", version_id="v2", etag=ETAG)
    assert (rec.bucket, rec.key, rec.version_id, rec.etag) == ("b2", "k2", "v2", ETAG)
    assert rec.content_type == "text/plain" and rec.user_meta == {"a": "1"} and rec.tags == {"t": "1"}
    assert not rec.delete_marker and rec.parts == () and not rec.versioned


# --- keepalive --------------------------------------------------------------------------

async def _serve(work_factory, after: float, interval: float) -> tuple[int, bytes]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await cp.respond_with_keepalive(request, work_factory(), {"x-test": "1"}, after, interval)

    app = web.Application()
    app.router.add_put("/{tail:.*}", handler)
    async with TestClient(TestServer(app)) as client:
        resp = await client.put("/b/k")
        return resp.status, await resp.read()


async def test_quick_work_is_an_ordinary_answer():
    async def work() -> bytes:
        return b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Done/>"

    status, body = await _serve(work, 5.0, 5.0)
    assert status == 200 and body.endswith(b"<Done/>") and b"  " not in body


async def test_quick_work_may_answer_with_its_own_headers():
    async def work() -> tuple[bytes, dict[str, str]]:
        return b"<Done/>", {"x-final": "yes"}

    async def handler(request: web.Request) -> web.StreamResponse:
        return await cp.respond_with_keepalive(request, work(), {"x-early": "1"}, 5.0, 5.0)

    app = web.Application()
    app.router.add_put("/{tail:.*}", handler)
    async with TestClient(TestServer(app)) as client:
        resp = await client.put("/b/k")
        assert resp.headers.get("x-final") == "yes" and "x-early" not in resp.headers
        assert await resp.read() == b"<Done/>"


async def test_quick_failure_keeps_its_status():
    async def work() -> bytes:
        raise NoSuchKey()

    app = web.Application()

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return await cp.respond_with_keepalive(request, work(), {}, 5.0, 5.0)
        except NoSuchKey:
            return web.Response(status=404)

    app.router.add_put("/{tail:.*}", handler)
    async with TestClient(TestServer(app)) as client:
        assert (await client.put("/b/k")).status == 404


async def test_long_work_is_kept_alive_with_whitespace():
    async def work() -> bytes:
        await asyncio.sleep(0.3)
        return b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Done/>"

    status, body = await _serve(work, 0.05, 0.05)
    assert status == 200
    head, _, rest = body.partition(b"?>\n")
    assert head.startswith(b"<?xml") and rest.strip() == b"<Done/>" and rest.startswith(b"  ")
    ET.fromstring(body)  # still one well-formed document


async def test_long_failure_is_an_error_document_in_a_200():
    async def work() -> bytes:
        await asyncio.sleep(0.2)
        raise PreconditionFailed()

    status, body = await _serve(work, 0.05, 0.05)
    assert status == 200
    tree = ET.fromstring(body)
    assert tree.tag == "Error" and tree.findtext("Code") == "PreconditionFailed"


# --- DeleteObjects ----------------------------------------------------------------------

def test_parse_delete():
    quiet, entries = bd.parse_delete(
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>TRUE</Quiet>'
        b"<Object><Key> spaced </Key></Object><Object><Key>k</Key><VersionId>v1</VersionId></Object></Delete>")
    assert quiet is True
    assert entries == [bd.DeleteEntry(" spaced "), bd.DeleteEntry("k", "v1")]
    assert bd.parse_delete(b"<Delete><Object><Key></Key></Object></Delete>") == (False, [bd.DeleteEntry("")])


def test_parse_delete_limits():
    doc = b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1000 + b"</Delete>"
    assert len(bd.parse_delete(doc)[1]) == 1000
    with pytest.raises(MalformedXML):
        bd.parse_delete(b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>")
    with pytest.raises(NotImplementedOp):
        bd.parse_delete(b"<Delete><Object><Key>k</Key><Size>3</Size></Object></Delete>")


def test_integrity_headers():
    assert bd.has_integrity_header({"Content-MD5": "x"})
    assert bd.has_integrity_header({"x-amz-checksum-crc32c": "x"})
    assert bd.has_integrity_header({"X-Amz-Trailer": "x-amz-checksum-sha256"})
    assert not bd.has_integrity_header({"x-amz-checksum-mode": "ENABLED", "x-amz-sdk-checksum-algorithm": "CRC32"})
    assert not bd.has_integrity_header({"x-amz-trailer": "x-amz-meta-a"})


def test_render_result():
    outcomes = [
        bd.EntryOutcome(bd.DeleteEntry("a")),
        bd.EntryOutcome(bd.DeleteEntry("b", "v1"), result=DeleteResult("v1", True)),
        bd.EntryOutcome(bd.DeleteEntry("c"), result=DeleteResult("m1", True)),
        bd.EntryOutcome(bd.DeleteEntry("<&>"), error=InvalidArgument("bad")),
    ]
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    tree = ET.fromstring(bd.render_result(False, outcomes))
    deleted = [(d.findtext(f"{ns}Key"), d.findtext(f"{ns}VersionId"), d.findtext(f"{ns}DeleteMarker"),
                d.findtext(f"{ns}DeleteMarkerVersionId")) for d in tree.iter(f"{ns}Deleted")]
    assert deleted == [("a", None, None, None), ("b", "v1", "true", "v1"), ("c", None, "true", "m1")]
    errors = [(e.findtext(f"{ns}Key"), e.findtext(f"{ns}Code")) for e in tree.iter(f"{ns}Error")]
    assert errors == [("<&>", "InvalidArgument")]
    quiet = ET.fromstring(bd.render_result(True, outcomes))
    assert not list(quiet.iter(f"{ns}Deleted")) and len(list(quiet.iter(f"{ns}Error"))) == 1


# --- unsupported headers ----------------------------------------------------------------

@pytest.mark.parametrize("op,method,is_object,headers", [
    ("PutObject", "PUT", True, {"x-amz-server-side-encryption-customer-algorithm": "AES256"}),
    ("PutObject", "PUT", True, {"X-Amz-Acl": "public-read"}),
    ("PutObject", "PUT", True, {"x-amz-grant-read": "id=x"}),
    ("PutObject", "PUT", True, {"x-amz-storage-class": "GLACIER"}),
    ("PutObject", "PUT", True, {"x-amz-object-lock-mode": "GOVERNANCE"}),
    ("CopyObject", "PUT", True, {"x-amz-copy-source-server-side-encryption-customer-key": "k"}),
    ("GetObject", "GET", True, {"x-amz-server-side-encryption-customer-key": "k"}),
    ("PutObject", "PUT", True, {"x-amz-acl": "aws-exec-read"}),
    ("PutObject", "PUT", True, {"x-amz-server-side-encryption": "AES256"}),
    ("PutObject", "PUT", True, {"x-amz-server-side-encryption-aws-kms-key-id": "k"}),
    ("PutObject", "PUT", True, {"x-amz-object-lock-legal-hold": "ON"}),
    ("PutObject", "PUT", True, {"x-amz-website-redirect-location": "/x"}),
    ("CreateMultipartUpload", "POST", True, {"x-amz-grant-full-control": "id=x"}),
    ("CopyObject", "PUT", True, {"x-amz-copy-source-range": "bytes=0-1"}),
    ("HeadObject", "HEAD", True, {"x-amz-server-side-encryption-customer-algorithm": "AES256"}),
    ("CreateBucket", "PUT", False, {"x-amz-acl": "public-read-write"}),
    ("CreateBucket", "PUT", False, {"x-amz-grant-read": "id=x"}),
    ("CreateBucket", "PUT", False, {"x-amz-bucket-object-lock-enabled": "true"}),
    ("CreateBucket", "PUT", False, {"x-amz-object-ownership": "ObjectWriter"}),
])
def test_unsupported_headers_are_refused(op, method, is_object, headers):
    with pytest.raises(NotImplementedOp):
        refuse_unsupported_headers(op, method, is_object, headers)


@pytest.mark.parametrize("op,method,is_object,headers", [
    ("PutObject", "PUT", True, {"x-amz-acl": "private", "x-amz-storage-class": "STANDARD"}),
    ("PutObject", "PUT", True, {"x-amz-acl": "bucket-owner-full-control"}),
    ("CreateBucket", "PUT", False, {"x-amz-acl": "private", "x-amz-object-ownership": "BucketOwnerEnforced",
                                    "x-amz-bucket-object-lock-enabled": "false"}),
    ("PutObject", "PUT", True, {"x-amz-acl": "bucket-owner-read"}),
    ("GetObject", "GET", True, {"x-amz-acl": "public-read"}),  # meaningless on a read: S3 ignores it
    # No bucket is requester-pays, no object under retention, MFA delete never enabled:
    # these ask for nothing objstore could violate.
    ("ListObjects", "GET", False, {"x-amz-request-payer": "requester"}),
    ("GetObject", "GET", True, {"x-amz-request-payer": "requester"}),
    ("PutObject", "PUT", True, {"x-amz-request-payer": "requester"}),
    ("CopyObject", "PUT", True, {"x-amz-request-payer": "requester"}),
    ("DeleteObject", "DELETE", True, {"x-amz-bypass-governance-retention": "true"}),
    ("DeleteObjects", "POST", False, {"x-amz-bypass-governance-retention": "true"}),
    ("DeleteObject", "DELETE", True, {"x-amz-mfa": "123456 789012"}),
])
def test_equivalent_headers_are_accepted(op, method, is_object, headers):
    refuse_unsupported_headers(op, method, is_object, headers)


def test_delete_entry_version_ids():
    bd.check_version_id(None)
    bd.check_version_id("null")
    bd.check_version_id("01a216d0f43c0000-gw1")
    for bad in ("", "v1", "01a216d0f43c0000"):
        with pytest.raises(InvalidArgument):
            bd.check_version_id(bad)
