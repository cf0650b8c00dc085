"""What a write's request headers say about the new object: its content type, the standard
headers kept with it, user metadata, tags (``x-amz-tagging``) and write conditions.

Pure: looks only at the headers. Shared by PutObject, CopyObject (REPLACE) and
CreateMultipartUpload, so all three keep exactly the same things.
"""
from __future__ import annotations

from typing import Mapping
from urllib.parse import parse_qsl

from gateway.raw_headers import to_stored
from objstore.errors import NotImplementedOp
from objstore.s3rules import MAX_OBJECT_TAGS, tag_set

STORED_HEADERS = ("content-encoding", "content-disposition", "cache-control", "expires", "content-language")


def stored_headers(h: Mapping[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """(content type, the standard headers kept with the object, user metadata)."""
    content_type = h.get("Content-Type") or "binary/octet-stream"
    kept: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = h.get(name)
        if value is None:
            continue
        if name == "content-encoding":
            codings = [c.strip() for c in value.split(",") if c.strip() and c.strip().lower() != "aws-chunked"]
            if not codings:
                continue
            value = ", ".join(codings)
        kept[name] = value
    meta = {k.lower()[len("x-amz-meta-"):]: to_stored(v) for k, v in h.items() if k.lower().startswith("x-amz-meta-")}
    return content_type, kept, meta


def write_conditions(h: Mapping[str, str]) -> tuple[str | None, bool]:
    """(If-Match value, If-None-Match: * given) of a write. Any If-None-Match value but
    ``*`` is 501 NotImplemented, as S3 answers."""
    inm = h.get("If-None-Match")
    if inm is not None and inm.strip() != "*":
        raise NotImplementedOp("A header you provided implies functionality that is not implemented",
                               Header="If-None-Match")
    return h.get("If-Match"), inm is not None


def parse_tagging_header(value: str) -> dict[str, str]:
    """The tag set of an ``x-amz-tagging`` header (URL query form); raises InvalidTag."""
    return tag_set(parse_qsl(value, keep_blank_values=True), MAX_OBJECT_TAGS)
