"""S3 rules that the gateway checks on the way in and the metadata service again when it applies.

Pure functions of their arguments, no IO, so both sides give the same answer:
- Tag sets (:func:`tag_set`, :func:`validate`): a ``dict[str, str]`` (insertion order kept,
  so it reads back as written). Limits (S3's): at most 10 tags on an object and 50 on a
  bucket; a key is 1 to 128 characters, a value 0 to 256; keys are unique; the ``aws:``
  prefix is reserved. Any violation raises ``InvalidTag`` (HTTP 400).
- Checksum types of multipart uploads (:func:`checksum_type_for`): COMPOSITE by default,
  FULL_OBJECT for crc64nvme; FULL_OBJECT only for the CRCs whose values combine. Violations
  raise ``InvalidRequest``.
- ETag lists of If-Match / If-None-Match headers (:func:`etag_matches`).
"""
from __future__ import annotations

from typing import Iterable

from objstore.errors import InvalidRequest, InvalidTag

MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256

CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")
# Algorithms whose part checksums combine into a whole-object value (FULL_OBJECT uploads).
FULL_OBJECT_ALGORITHMS = ("crc32", "crc32c", "crc64nvme")


def tag_set(pairs: Iterable[tuple[str, str]], limit: int = MAX_OBJECT_TAGS) -> dict[str, str]:
    """A validated tag set from (key, value) pairs; raises InvalidTag (duplicates included)."""
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise InvalidTag("Cannot provide multiple Tags with the same key", TagKey=key)
        tags[key] = value
    validate(tags, limit)
    return tags


def validate(tags: dict[str, str], limit: int = MAX_OBJECT_TAGS) -> None:
    """Raise InvalidTag unless ``tags`` is within S3's limits."""
    if len(tags) > limit:
        what = "Object" if limit == MAX_OBJECT_TAGS else "Bucket"
        raise InvalidTag(f"{what} tags cannot be greater than {limit}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidTag("Tag keys and values must be strings")
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            raise InvalidTag("The TagKey you have provided is invalid", TagKey=key)
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidTag("The TagValue you have provided is invalid", TagKey=key, TagValue=value)
        if key.lower().startswith("aws:"):
            raise InvalidTag("Your TagKey cannot be prefixed with aws:", TagKey=key)


def checksum_type_for(algorithm: str, requested: str) -> str:
    """The checksum type an upload uses (S3's defaults); raises InvalidRequest."""
    if not algorithm:
        if requested:
            raise InvalidRequest("The x-amz-checksum-type header requires x-amz-checksum-algorithm.")
        return ""
    ctype = requested or ("FULL_OBJECT" if algorithm == "crc64nvme" else "COMPOSITE")
    if ctype not in CHECKSUM_TYPES:
        raise InvalidRequest(f"Value for x-amz-checksum-type header is invalid: {requested}")
    if ctype == "FULL_OBJECT" and algorithm not in FULL_OBJECT_ALGORITHMS:
        raise InvalidRequest(f"The FULL_OBJECT checksum type cannot be used with the {algorithm} checksum algorithm.")
    if ctype == "COMPOSITE" and algorithm == "crc64nvme":
        raise InvalidRequest("The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.")
    return ctype


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match header value (a list of ETags, quoted or not, or
    ``*``) names ``etag``."""
    return any(t == "*" or t.strip('"') == etag for t in (x.strip() for x in header.split(",")))
