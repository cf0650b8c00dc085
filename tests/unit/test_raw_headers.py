"""User metadata header values are bytes: stored in a form the metadata service accepts and
written back exactly (gateway.raw_headers)."""
from __future__ import annotations

import pytest
from aiohttp import http_writer
from multidict import CIMultiDict

from gateway import raw_headers
from gateway.object_headers import stored_headers


def received(raw: bytes) -> str:
    """What aiohttp hands a handler for a header value sent as ``raw``."""
    return raw.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("raw", [b"plain", "Hello Worldé".encode(), "Hello Worldé".encode("latin-1"),
                                 b"\xff\xfe mixed \xc3\xa9 \xe9", "\U0001f600".encode()])
def test_values_round_trip_and_store_as_valid_utf8(raw):
    stored = raw_headers.to_stored(received(raw))
    stored.encode("utf-8")  # the metadata service can encode it
    assert raw_headers.to_sent(stored).encode("utf-8", "surrogateescape") == raw


def test_valid_utf8_is_stored_as_text_as_before():
    assert raw_headers.to_stored("Hello Worldé") == "Hello Worldé"
    assert raw_headers.to_sent("Hello Worldé") == "Hello Worldé"


def test_stored_headers_keep_latin1_metadata():
    _, _, meta = stored_headers({"x-amz-meta-v": received(b"caf\xe9")})
    assert raw_headers.to_sent(meta["v"]).encode("utf-8", "surrogateescape") == b"caf\xe9"


def test_serializer_writes_the_bytes_and_refuses_injection():
    raw_headers.install()
    serialize = http_writer._serialize_headers
    out = serialize("HTTP/1.1 200 OK", CIMultiDict({"x-amz-meta-v": received(b"caf\xe9"), "A": "b"}))
    assert out == b"HTTP/1.1 200 OK\r\nx-amz-meta-v: caf\xe9\r\nA: b\r\n\r\n"
    assert serialize("HTTP/1.1 200 OK", CIMultiDict({"A": "é"})) == "HTTP/1.1 200 OK\r\nA: é\r\n\r\n".encode()
    with pytest.raises(ValueError):
        serialize("HTTP/1.1 200 OK", CIMultiDict({"A": received(b"\xe9\r\nSet-Cookie: x")}))
