"""The source of a copy (CopyObject, UploadPartCopy): the ``x-amz-copy-source`` header and
the ``x-amz-copy-source-if-*`` conditions. Pure: looks only at header values and the
source version's ETag and time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from urllib.parse import unquote_to_bytes

from gateway.conditions import etag_matches, parse_http_date
from metadata.api.results import ObjectLookup
from objstore.errors import InvalidArgument, NotImplementedOp, PreconditionFailed
from objstore.hlc import is_version_id


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str
    version_id: str | None = None


def parse_copy_source(value: str) -> CopySource:
    """Parse ``x-amz-copy-source``; raises InvalidArgument when it names no bucket and key."""
    def bad(message: str = "Copy Source must mention the source bucket and key: sourcebucket/sourcekey") -> InvalidArgument:
        return InvalidArgument(message, ArgumentName="x-amz-copy-source", ArgumentValue=value)

    raw = value.strip()
    if raw.startswith("arn:"):
        raise NotImplementedOp("Copy sources named by access point ARNs are not supported.")
    raw = raw[1:] if raw.startswith("/") else raw
    path, sep, query = raw.partition("?")
    version_id = None
    if sep:
        for item in query.split("&"):
            name, _, v = item.partition("=")
            if name != "versionId":
                raise bad(f"Unsupported copy source parameter '{name}'.")
            version_id = unquote_to_bytes(v).decode("utf-8", "replace")
            if not version_id:
                raise bad("Version id cannot be the empty string")
            if version_id != "null" and not is_version_id(version_id):
                raise bad("Invalid version id specified")
    try:
        decoded = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        raise bad("Copy Source must be URL-encoded UTF-8.") from None
    bucket, _, key = decoded.partition("/")
    if not bucket or not key:
        raise bad()
    return CopySource(bucket, key, version_id)


def check_copy_conditions(headers: Mapping[str, str], etag: str, last_modified: float) -> None:
    """Raise PreconditionFailed unless the source satisfies the ``x-amz-copy-source-if-*`` headers.

    As S3: if-match decides over if-unmodified-since, if-none-match over
    if-modified-since; unparseable dates are ignored.
    """
    modified = int(last_modified)
    if_match = headers.get("x-amz-copy-source-if-match")
    if if_match is not None:
        if not etag_matches(if_match, etag):
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Match")
    else:
        ius = parse_http_date(headers.get("x-amz-copy-source-if-unmodified-since"))
        if ius is not None and modified > ius:
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Unmodified-Since")
    if_none_match = headers.get("x-amz-copy-source-if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, etag):
            raise PreconditionFailed(Condition="x-amz-copy-source-If-None-Match")
    else:
        ims = parse_http_date(headers.get("x-amz-copy-source-if-modified-since"))
        if ims is not None and modified <= ims:
            raise PreconditionFailed(Condition="x-amz-copy-source-If-Modified-Since")


def copy_source_headers(found: ObjectLookup) -> dict[str, str]:
    """``x-amz-copy-source-version-id`` when the source bucket has versioning configured."""
    return {"x-amz-copy-source-version-id": found.version.s3_version_id} if found.versioning else {}
