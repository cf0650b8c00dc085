"""S3 XML: rendering of responses and errors, and strict parsing of request bodies.

Rendering builds text with explicit escaping (the response shapes are fixed and small);
parsing uses ElementTree with a size cap and raises ``MalformedXML`` on anything that is
not the expected document. Invariant: every request body is parsed by :func:`fromstring`,
which refuses a DOCTYPE in any encoding before reading it (no entities, no DTDs).
"""
from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from email.utils import formatdate
from typing import Iterable
from xml.sax.saxutils import escape

from objstore.errors import MalformedXML, ObjstoreError

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_XML_BODY = 1024 * 1024


def iso8601(ts: float) -> str:
    """S3's timestamp form in XML: 2009-10-12T17:50:30.000Z.

    Truncated to the millisecond, never rounded: a rounded .9996 would print as .000 of
    the same second, up to a second early, and sync tools comparing it with a local
    mtime would see the object as older than the file it was uploaded from.
    """
    ms_total = int(ts * 1000)
    seconds, ms = divmod(ms_total, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def http_date(ts: float) -> str:
    """RFC 7231 date for Last-Modified."""
    return formatdate(int(ts), usegmt=True)


def el(name: str, value: object) -> str:
    """One element with escaped text."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def document(root: str, parts: Iterable[str]) -> bytes:
    return (HEADER + f'<{root} xmlns="{S3_NS}">' + "".join(parts) + f"</{root}>").encode()


def error_document(err: ObjstoreError, resource: str, request_id: str) -> bytes:
    extra = "".join(el(k, v) for k, v in err.extra.items() if k[:1].isupper())
    return (
        HEADER
        + "<Error>"
        + el("Code", err.code)
        + el("Message", err.message)
        + extra
        + el("Resource", resource)
        + el("RequestId", request_id)
        + "</Error>"
    ).encode()


def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class _DoctypeRefused(Exception):
    pass


class _NoDoctypeBuilder(ET.TreeBuilder):
    """A tree builder that stops the parse at the start of any DOCTYPE declaration."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _DoctypeRefused(name)


def fromstring(body: bytes) -> ET.Element:
    """Parse ``body`` (any encoding expat reads: UTF-8, UTF-16, ...) without DTDs.

    A DOCTYPE is refused as soon as the parser meets it, before any entity it declares
    is read or expanded, so entity-expansion and external-entity bodies cost nothing
    whatever their encoding. Raises MalformedXML for that and for any parse error.
    """
    parser = ET.XMLParser(target=_NoDoctypeBuilder())
    try:
        parser.feed(body)
        return parser.close()
    except _DoctypeRefused:
        raise MalformedXML("DOCTYPE and ENTITY declarations are not allowed.") from None
    except (ET.ParseError, ValueError, LookupError, TypeError) as exc:
        raise MalformedXML() from exc


def parse(body: bytes, root: str, max_size: int = MAX_XML_BODY) -> ET.Element:
    """Parse a request body whose root element must be ``root`` (namespace optional).

    Raises MalformedXML for a body over ``max_size``, with a DOCTYPE, not well-formed,
    or with another root element.
    """
    if len(body) > max_size:
        raise MalformedXML("The XML you provided was too large.")
    tree = fromstring(body)
    if _strip_ns(tree.tag) != root:
        raise MalformedXML(f"Expected a {root} document.")
    return tree


def child_text(node: ET.Element, name: str) -> str | None:
    for c in node:
        if _strip_ns(c.tag) == name:
            return (c.text or "").strip()
    return None


def parse_create_bucket(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucketConfiguration, or None for an empty body."""
    if not body.strip():
        return None
    tree = parse(body, "CreateBucketConfiguration")
    for c in tree:
        if _strip_ns(c.tag) not in ("LocationConstraint", "Bucket", "Location"):
            raise MalformedXML(f"Unexpected element {_strip_ns(c.tag)}.")
    return child_text(tree, "LocationConstraint")


def local_name(node: ET.Element) -> str:
    """An element's tag without its namespace."""
    return _strip_ns(node.tag)
