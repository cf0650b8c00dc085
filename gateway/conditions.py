"""Pieces of HTTP conditional requests shared by GET/HEAD and the copy-source conditions."""
from __future__ import annotations

from email.utils import parsedate_to_datetime


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-Match / If-None-Match header value names ``etag`` (or is ``*``)."""
    return any(t.strip() == "*" or t.strip().strip('"') == etag for t in header.split(","))


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date header as unix seconds; None when absent or unparsable (S3 ignores it)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
