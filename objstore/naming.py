"""Validation of bucket names and object keys (S3's rules)."""
from __future__ import annotations

import re

from objstore.errors import InvalidArgument, InvalidBucketName, KeyTooLongError

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
MAX_KEY_BYTES = 1024


def validate_bucket_name(name: str) -> None:
    """Raise InvalidBucketName unless ``name`` follows S3's general-purpose bucket rules."""
    reason = None
    if not 3 <= len(name) <= 63:
        reason = "Bucket names must be between 3 and 63 characters long."
    elif not _BUCKET_RE.match(name):
        reason = (
            "Bucket names may contain only lowercase letters, digits, dots and hyphens, "
            "and must begin and end with a letter or digit."
        )
    elif ".." in name or ".-" in name or "-." in name:
        reason = "Bucket names must not contain two adjacent periods or a period next to a hyphen."
    elif _IPV4_RE.match(name):
        reason = "Bucket names must not be formatted as an IP address."
    elif name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3")):
        reason = "Bucket names must not use a reserved prefix or suffix."
    if reason:
        raise InvalidBucketName(reason, BucketName=name)


def validate_key(key: str) -> None:
    """Raise unless ``key`` is a storable object key: 1..1024 bytes of valid UTF-8."""
    if not key:
        raise InvalidArgument("Object keys must not be empty.")
    try:
        n = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument("Object keys must be valid UTF-8.") from None
    if n > MAX_KEY_BYTES:
        raise KeyTooLongError(Key=key[:64] + "...", Size=n, MaxSizeAllowed=MAX_KEY_BYTES)
