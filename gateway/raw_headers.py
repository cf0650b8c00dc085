"""Header values that are bytes, not text: S3 keeps user metadata (``x-amz-meta-*``) exactly
as the client sent it, UTF-8 or not.

aiohttp decodes every request header value as UTF-8 with ``surrogateescape``, so the bytes
are ``value.encode("utf-8", "surrogateescape")``: valid UTF-8 arrives as ordinary text and
each other byte as a lone surrogate (U+DC80..U+DCFF). Lone surrogates cannot be stored
(the metadata service encodes strict UTF-8), so :func:`to_stored` keeps valid UTF-8 as it
is (as before) and any other value as ``"\\0b64:" + base64(bytes)``: NUL never occurs in an
HTTP header value, so the two forms never collide. :func:`to_sent` turns a stored value back
into the surrogate form, and :func:`install` makes aiohttp write response headers with
``surrogateescape``, so the client receives the bytes it sent. aiohttp's own serializer is
used whenever no header holds a surrogate (almost always).
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Mapping

from aiohttp import http_writer

_PREFIX = "\0b64:"
_SURROGATE = re.compile("[\udc80-\udcff]")


def to_stored(value: str) -> str:
    """The form of a received header value the metadata service can store."""
    if value.isascii() or not _SURROGATE.search(value):
        return value
    return _PREFIX + base64.b64encode(value.encode("utf-8", "surrogateescape")).decode("ascii")


def to_sent(stored: str) -> str:
    """The header value that puts the bytes a stored value stands for on the wire."""
    if not stored.startswith(_PREFIX):
        return stored
    try:
        return base64.b64decode(stored[len(_PREFIX):], validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        return stored[len(_PREFIX):]


def _serialize_headers(status_line: str, headers: Mapping[str, str], _aiohttp=http_writer._serialize_headers) -> bytes:
    if all(v.isascii() or not _SURROGATE.search(v) for v in headers.values()):
        return _aiohttp(status_line, headers)
    for part in (status_line, *headers.keys(), *headers.values()):
        http_writer._safe_header(part)  # no CR, LF or NUL: no header injection
    lines = [status_line, *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def install() -> None:
    """Make aiohttp write header values holding lone surrogates as the bytes they stand for
    (idempotent; the gateway process calls it when it builds its app)."""
    if http_writer._serialize_headers is not _serialize_headers:
        http_writer._serialize_headers = _serialize_headers
