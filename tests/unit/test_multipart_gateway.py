"""The gateway's pure multipart pieces: routing, the Complete body, part ranges for reads,
copy-source ranges and checksum rules for parts."""
from __future__ import annotations

import pytest

from gateway.datapath.reader import part_spans
from gateway.handlers.multipart import parse_complete
from gateway.datapath.part_read import part_headers, part_range, requested_part
from gateway.handlers.upload_part import check_part_checksum, sent_checksum_algorithms, source_range
from gateway.query import part_number
from gateway.router import parse_endpoint
from metadata.api.upload_records import MultipartUpload
from objstore.errors import (
    InvalidArgument, InvalidPartNumber, InvalidRequest, MalformedXML, MethodNotAllowed,
)
from objstore.types import ObjectVersion, PartRef


@pytest.mark.parametrize("method,query,headers,op", [
    ("POST", {"uploads": ""}, {}, "CreateMultipartUpload"),
    ("PUT", {"partNumber": "3", "uploadId": "u"}, {}, "UploadPart"),
    ("PUT", {"partNumber": "3", "uploadId": "u"}, {"X-Amz-Copy-Source": "b/k"}, "UploadPartCopy"),
    ("POST", {"uploadId": "u"}, {}, "CompleteMultipartUpload"),
    ("DELETE", {"uploadId": "u"}, {}, "AbortMultipartUpload"),
    ("GET", {"uploadId": "u"}, {}, "ListParts"),
    ("GET", {"partNumber": "2"}, {}, "GetObject"),
    ("HEAD", {"partNumber": "2"}, {}, "HeadObject"),
])
def test_object_multipart_routes(method, query, headers, op):
    assert parse_endpoint(method, "127.0.0.1", "/b/k", query, headers=headers).op == op


def test_bucket_upload_listing_route_and_refusals():
    assert parse_endpoint("GET", "127.0.0.1", "/b", {"uploads": ""}).op == "ListMultipartUploads"
    for method, path, query, err in [
        ("PUT", "/b", {"uploads": ""}, MethodNotAllowed),
        ("GET", "/b/k", {"uploads": ""}, MethodNotAllowed),
        ("HEAD", "/b/k", {"uploadId": "u"}, MethodNotAllowed),
        ("PUT", "/b/k", {"uploadId": "u"}, InvalidArgument),
        ("PUT", "/b/k", {"partNumber": "1"}, InvalidArgument),
    ]:
        with pytest.raises(err):
            parse_endpoint(method, "127.0.0.1", path, query)


def test_parse_complete_reads_parts_etags_and_checksums_in_order():
    body = (b'<?xml version="1.0"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b'<Part><ETag>"aa"</ETag><PartNumber>2</PartNumber><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>'
            b'<Part><PartNumber>1</PartNumber><ETag>bb</ETag></Part></CompleteMultipartUpload>')
    assert parse_complete(body) == [[2, "aa", {"crc32": "AAAAAA=="}], [1, "bb", {}]]


@pytest.mark.parametrize("body", [
    b"", b"<CompleteMultipartUpload/>", b"<Other><Part/></Other>", b"<CompleteMultipartUpload><Part>",
    b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>",
    # '²' passes str.isdigit() but not int(); '٣' and '３' are int() 3 (part 3 under another name)
    *(f"<CompleteMultipartUpload><Part><PartNumber>{n}</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>"
      .encode() for n in ("\u00b2", "\u0663", "\uff13", "1\u00b9")),
    b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>",
    b"<CompleteMultipartUpload><Bogus/></CompleteMultipartUpload>",
    b'<!DOCTYPE x [<!ENTITY a "b">]><CompleteMultipartUpload/>',
])
def test_parse_complete_refuses_malformed_bodies(body):
    with pytest.raises(MalformedXML):
        parse_complete(body)


def parts(*sizes: int) -> tuple[PartRef, ...]:
    return tuple(PartRef(i + 1, f"v{i}", s, "0" * 32, ("n1",)) for i, s in enumerate(sizes))


def test_part_spans_cover_exactly_the_range():
    ps = parts(10, 5, 0, 7)
    assert [(p.number, a, b) for p, a, b in part_spans(ps, 0, 21)] == [(1, 0, 9), (2, 0, 4), (4, 0, 6)]
    assert [(p.number, a, b) for p, a, b in part_spans(ps, 9, 10)] == [(1, 9, 9), (2, 0, 0)]
    assert [(p.number, a, b) for p, a, b in part_spans(ps, 15, 15)] == [(4, 0, 0)]
    assert [(p.number, a, b) for p, a, b in part_spans(ps, 12, 13)] == [(2, 2, 3)]
    for start in range(22):
        for end in range(start, 22):
            assert sum(b - a + 1 for _, a, b in part_spans(ps, start, end)) == end - start + 1


def read_part(query: dict[str, str], headers: dict[str, str], v: ObjectVersion):
    """The part a GET asks for: the router parses (and refuses) partNumber, then the part
    is looked up in the version."""
    ep = parse_endpoint("GET", "127.0.0.1", "/b/k", query, headers=headers)
    return requested_part(ep.part_number, headers, v)


def test_requested_part_of_multipart_and_single_part_objects():
    mp = ObjectVersion("b", "k", "v", 15, "e-2", 1.0, parts=parts(10, 5))
    second = read_part({"partNumber": "2"}, {}, mp)
    assert part_range(second) == (10, 14) and part_headers(second) == {"x-amz-mp-parts-count": "2"}
    assert read_part({}, {"Range": "bytes=0-1"}, mp) is None
    plain = ObjectVersion("b", "k", "v", 4, "e", 1.0)
    one = read_part({"partNumber": "1"}, {}, plain)
    assert part_range(one) == (0, 3) and part_headers(one) == {}
    empty = read_part({"partNumber": "1"}, {}, ObjectVersion("b", "k", "v", 0, "e", 1.0))
    assert part_range(empty) is None
    for query, headers, v, err in [
        ({"partNumber": "3"}, {}, mp, InvalidPartNumber),
        ({"partNumber": "2"}, {}, plain, InvalidPartNumber),
        ({"partNumber": "0"}, {}, mp, InvalidArgument),
        ({"partNumber": "10001"}, {}, mp, InvalidArgument),
        ({"partNumber": "x"}, {}, mp, InvalidArgument),
        ({"partNumber": "1"}, {"Range": "bytes=0-1"}, mp, InvalidRequest),
    ]:
        with pytest.raises(err):
            read_part(query, headers, v)


def test_part_numbers_and_copy_source_ranges():
    assert part_number({"partNumber": "10000"}) == 10000
    for raw in ("0", "10001", "-1", "1.5", ""):
        with pytest.raises(InvalidArgument):
            part_number({"partNumber": raw})
    assert source_range(None, 10) == (0, 9)
    assert source_range("bytes=2-5", 10) == (2, 5)
    for bad in ("bytes=5-2", "bytes=0-10", "bytes=-3", "bytes=3-", "items=0-1"):
        with pytest.raises(InvalidArgument):
            source_range(bad, 10)


def test_part_checksums_must_use_the_uploads_algorithm():
    up = MultipartUpload("b", "k", "u", 1.0, "o", checksum_algorithm="crc32", checksum_type="COMPOSITE")
    assert sent_checksum_algorithms({"x-amz-checksum-sha256": "x"}) == ["sha256"]
    assert sent_checksum_algorithms({"x-amz-trailer": "x-amz-checksum-crc32"}) == ["crc32"]
    check_part_checksum(up, [])
    check_part_checksum(up, ["crc32"])
    with pytest.raises(InvalidRequest):
        check_part_checksum(up, ["sha256"])
    check_part_checksum(MultipartUpload("b", "k", "u", 1.0, "o"), ["sha256"])
