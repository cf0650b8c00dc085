"""Query values of S3 requests, parsed and validated: pure functions of the query.

The router calls these once per request (:mod:`gateway.endpoints`); handlers receive the
parsed values and never read the query again. Each function raises the S3 error S3
answers for its malformed value (``InvalidArgument``, with the argument's name and value).
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Mapping

from metadata.api.upload_records import MAX_PART_NUMBER
from objstore.errors import InvalidArgument
from objstore.hlc import is_version_id

MAX_KEYS = 1000  # the most entries one listing page holds
MAX_INT = 2**31 - 1
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: int() also takes "²"-like, "1_0", " 1", "+1"


def _integer(raw: str) -> int:
    """``raw`` as a decimal integer of ASCII digits (at most 19, an optional "-"); ValueError otherwise."""
    if not _INTEGER.fullmatch(raw):
        raise ValueError(raw)
    return int(raw)


def max_keys(query: Mapping[str, str]) -> int:
    """``max-keys``, capped at 1000 (1000 when absent); InvalidArgument unless an integer >= 0."""
    raw = query.get("max-keys", str(MAX_KEYS))
    try:
        n = _integer(raw)
    except ValueError:
        raise InvalidArgument("Provided max-keys not an integer or within integer range",
                              ArgumentName="max-keys", ArgumentValue=raw) from None
    if n < 0:
        raise InvalidArgument("Argument maxKeys must be an integer between 0 and 2147483647",
                              ArgumentName="maxKeys", ArgumentValue=raw)
    return min(n, MAX_KEYS)


def bounded_int(query: Mapping[str, str], name: str, default: int, lo: int = 0) -> int:
    """The integer ``name`` (``default`` when absent); InvalidArgument unless in lo..2**31-1."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        n = _integer(raw)
    except ValueError:
        n = lo - 1
    if n < lo or n > MAX_INT:
        raise InvalidArgument(f"Provided {name} not an integer or within integer range", ArgumentName=name,
                              ArgumentValue=raw)
    return n


def encoding_type(query: Mapping[str, str]) -> str | None:
    """``encoding-type``: None or "url"; InvalidArgument for anything else."""
    enc = query.get("encoding-type")
    if enc is not None and enc != "url":
        raise InvalidArgument("Invalid Encoding Method specified in Request",
                              ArgumentName="encoding-type", ArgumentValue=enc)
    return enc


def check_version_id(version_id: str | None) -> None:
    """Raise InvalidArgument for a version id objstore could never have issued ("null" and
    our HLC ids are fine; None means none was given)."""
    if version_id is None:
        return
    if version_id == "":
        raise InvalidArgument("Version id cannot be the empty string", ArgumentName="versionId", ArgumentValue="")
    if version_id != "null" and not is_version_id(version_id):
        raise InvalidArgument("Invalid version id specified", ArgumentName="versionId", ArgumentValue=version_id)


def version_id(query: Mapping[str, str]) -> str | None:
    """The ``versionId`` value, validated; None when absent."""
    vid = query.get("versionId")
    check_version_id(vid)
    return vid


def version_id_marker(query: Mapping[str, str], key_marker: str) -> str:
    """``version-id-marker`` ("" when absent); it needs a key marker and must be a version id."""
    marker = query.get("version-id-marker", "")
    if marker and not key_marker:
        raise InvalidArgument("A version-id marker cannot be specified without a key marker.",
                              ArgumentName="version-id-marker", ArgumentValue=marker)
    if marker and marker != "null" and not is_version_id(marker):
        raise InvalidArgument("Invalid version id specified", ArgumentName="version-id-marker", ArgumentValue=marker)
    return marker


def part_number(query: Mapping[str, str]) -> int:
    """The ``partNumber`` value; InvalidArgument unless an integer in 1..10000."""
    raw = query.get("partNumber", "")
    if not _INTEGER.fullmatch(raw) or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise InvalidArgument(f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                              ArgumentName="partNumber", ArgumentValue=raw)
    return int(raw)


MAX_BUCKETS = 10000  # the most buckets one ListBuckets page holds (S3's range is 1..10000)


def max_buckets(query: Mapping[str, str]) -> int:
    """``max-buckets`` (10000 when absent); InvalidArgument unless an integer in 1..10000."""
    n = bounded_int(query, "max-buckets", MAX_BUCKETS, lo=1)
    if n > MAX_BUCKETS:
        raise InvalidArgument(f"max-buckets must be between 1 and {MAX_BUCKETS}", ArgumentName="max-buckets",
                              ArgumentValue=query["max-buckets"])
    return n


def continuation(query: Mapping[str, str]) -> tuple[str | None, str]:
    """(the ``continuation-token`` given, or None when absent or empty; the marker it stands
    for, "" for none). An empty token asks for the first page, as S3 answers it."""
    token = query.get("continuation-token") or None
    return token, decode_token(token) if token is not None else ""


def encode_token(marker: str) -> str:
    """The continuation token of a ListObjectsV2 page that ends at ``marker``."""
    return base64.urlsafe_b64encode(b"v1:" + marker.encode("utf-8")).decode()


def decode_token(token: str) -> str:
    """The marker a continuation token stands for; InvalidArgument for one we never issued."""
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if not raw.startswith(b"v1:"):
            raise ValueError
        return raw[3:].decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("The continuation token provided is incorrect",
                              ArgumentName="continuation-token", ArgumentValue=token) from None
