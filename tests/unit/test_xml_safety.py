"""Request XML: a DOCTYPE is refused in any encoding, before any entity is expanded.

Every parser of a request body (CreateBucket configuration, CompleteMultipartUpload,
DeleteObjects, PutBucketVersioning, Put{Object,Bucket}Tagging) answers MalformedXML for
a body with a DOCTYPE, whether UTF-8 or UTF-16, and a billion-laughs body costs nothing.
"""
from __future__ import annotations

from typing import Callable

import pytest

from gateway.handlers.batch_delete import parse_delete
from gateway.handlers.multipart import parse_complete
from gateway.handlers.tagging import parse_tagging
from gateway.handlers.versioning import parse_versioning
from gateway.xml import fromstring, parse, parse_create_bucket
from objstore.errors import MalformedXML

VALID: dict[str, tuple[Callable[[bytes], object], str]] = {
    "create_bucket": (parse_create_bucket, "<CreateBucketConfiguration><LocationConstraint>r</LocationConstraint>"
                                           "</CreateBucketConfiguration>"),
    "complete": (parse_complete, "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
                                 "</CompleteMultipartUpload>"),
    "delete": (parse_delete, "<Delete><Object><Key>k</Key></Object></Delete>"),
    "versioning": (parse_versioning, "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
    "tagging": (parse_tagging, "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"),
}

LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
          + "]>")


def with_doctype(document: str, doctype: str) -> str:
    root = document[1:document.index(">")]
    return doctype.replace("lolz", root) + document.replace(">k<", ">&lol9;<", 1)


def encoded(text: str, encoding: str) -> bytes:
    return (f'<?xml version="1.0" encoding="{encoding}"?>' + text).encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("name", sorted(VALID))
def test_every_parser_accepts_its_document(name: str, encoding: str) -> None:
    parser, document = VALID[name]
    parser(encoded(document, encoding))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("doctype", [
    LAUGHS,
    '<!DOCTYPE lolz SYSTEM "file:///etc/passwd">',
    '<!DOCTYPE lolz [<!ENTITY lol9 SYSTEM "http://169.254.169.254/">]>',
    "<!DOCTYPE lolz>",
], ids=["billion-laughs", "external-dtd", "external-entity", "bare"])
@pytest.mark.parametrize("name", sorted(VALID))
def test_every_parser_refuses_a_doctype(name: str, doctype: str, encoding: str) -> None:
    parser, document = VALID[name]
    body = encoded(with_doctype(document, doctype), encoding)
    with pytest.raises(MalformedXML):
        parser(body)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_fromstring_refuses_doctype_before_reading_entities(encoding: str) -> None:
    # Bytes after the first declarations that no XML parser accepts: had the parser read on into
    # the internal subset (or expanded anything in it), it would stop there with a syntax error,
    # not with the DOCTYPE refusal.
    subset = '<!ENTITY x "y">' * 50_000 + "<!ENTITY broken <<<&&& >"
    body = encoded("<!DOCTYPE a [" + subset + "]><a>&x;</a>", encoding)
    with pytest.raises(MalformedXML, match="DOCTYPE"):
        fromstring(body)
    with pytest.raises(MalformedXML) as plain:  # the same junk outside a DOCTYPE is a syntax error
        fromstring(encoded("<a>" + subset + "</a>", encoding))
    assert "DOCTYPE" not in str(plain.value)


def test_namespaces_and_utf16_without_doctype_parse() -> None:
    tree = parse(encoded('<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet/></Tagging>',
                         "utf-16"), "Tagging")
    assert tree.tag.endswith("}Tagging")


@pytest.mark.parametrize("body", [b"", b"<", b"<a>", b"\xff\xfe<\x00", b'<?xml version="1.0" encoding="nope"?><a/>',
                                  b"<a>&undefined;</a>", b"<a></b>"])
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        fromstring(body)
