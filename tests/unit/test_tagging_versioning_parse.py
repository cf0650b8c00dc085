"""Parsing of tagging and versioning documents, the x-amz-tagging header, and tag limits."""
from __future__ import annotations

import pytest

from gateway.datapath.lookup import with_marker_headers
from gateway.handlers.tagging import parse_tagging, tagging_document
from gateway.handlers.versioning import parse_versioning
from gateway.object_headers import parse_tagging_header
from objstore import s3rules as tags
from objstore.errors import (
    IllegalVersioningConfiguration, InvalidTag, MalformedXML, MethodNotAllowed, NoSuchKey, NotImplementedOp,
)

NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def doc(*pairs: tuple[str, str]) -> bytes:
    body = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f"<Tagging {NS}><TagSet>{body}</TagSet></Tagging>".encode()


def test_tagging_document_round_trip_keeps_order():
    t = {"b": "2", "a": "", "x&y": "<v>"}
    assert parse_tagging(tagging_document(t)) == t
    assert list(parse_tagging(tagging_document(t))) == ["b", "a", "x&y"]
    assert parse_tagging(doc()) == {}


@pytest.mark.parametrize("body", [
    b"garbage",
    b"<Tagging/>",
    b"<Tagging><TagSet/><TagSet/></Tagging>",
    b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
    b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value><Key>c</Key></Tag></TagSet></Tagging>",
    b"<Tagging><TagSet><Other/></TagSet></Tagging>",
    b"<TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet>",
])
def test_malformed_tagging_documents(body):
    with pytest.raises(MalformedXML):
        parse_tagging(body)


@pytest.mark.parametrize("pairs", [
    [(f"k{i}", "v") for i in range(11)],
    [("a", "1"), ("a", "2")],
    [("k" * 129, "v")],
    [("", "v")],
    [("k", "v" * 257)],
    [("aws:x", "v")],
    [("AWS:x", "v")],
])
def test_tag_limits(pairs):
    with pytest.raises(InvalidTag):
        parse_tagging(doc(*pairs))


def test_tag_limits_at_the_edge_are_fine():
    t = parse_tagging(doc(*[(f"{i}" + "k" * 127, "v" * 256) for i in range(10)]))
    assert len(t) == 10
    tags.validate({f"k{i}": "v" for i in range(50)}, tags.MAX_BUCKET_TAGS)
    with pytest.raises(InvalidTag):
        tags.validate({f"k{i}": "v" for i in range(51)}, tags.MAX_BUCKET_TAGS)


def test_tagging_header_is_url_query_form():
    assert parse_tagging_header("a=1&b=two%20words&c=&d+e=%C3%BC") == {"a": "1", "b": "two words", "c": "",
                                                                      "d e": "ü"}
    assert parse_tagging_header("") == {}
    with pytest.raises(InvalidTag):
        parse_tagging_header("a=1&a=2")
    with pytest.raises(InvalidTag):
        parse_tagging_header("&".join(f"k{i}=v" for i in range(11)))


def test_versioning_configuration():
    assert parse_versioning(f"<VersioningConfiguration {NS}><Status>Enabled</Status></VersioningConfiguration>"
                            .encode()) == "Enabled"
    assert parse_versioning(b"<VersioningConfiguration><Status>Suspended</Status>"
                            b"<MfaDelete>Disabled</MfaDelete></VersioningConfiguration>") == "Suspended"
    with pytest.raises(MalformedXML):
        parse_versioning(b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>")
    with pytest.raises(MalformedXML):
        parse_versioning(b"<VersioningConfiguration><Colour>red</Colour></VersioningConfiguration>")
    with pytest.raises(IllegalVersioningConfiguration):
        parse_versioning(b"<VersioningConfiguration><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>")
    with pytest.raises(NotImplementedOp):
        parse_versioning(b"<VersioningConfiguration><Status>Enabled</Status>"
                         b"<MfaDelete>Enabled</MfaDelete></VersioningConfiguration>")


def test_delete_marker_details_become_headers():
    err = with_marker_headers(NoSuchKey(Key="k", delete_marker=True, version_id="v9", last_modified=1.0), "GET")
    assert err.extra == {"Key": "k", "x-amz-delete-marker": "true", "x-amz-version-id": "v9"}
    err = with_marker_headers(MethodNotAllowed(ResourceType="DeleteMarker", delete_marker=True, version_id="v9"),
                              "HEAD")
    assert err.extra["Method"] == "HEAD" and err.extra["x-amz-delete-marker"] == "true"
    plain = NoSuchKey(Key="k")
    assert with_marker_headers(plain, "GET").extra == {"Key": "k"}
