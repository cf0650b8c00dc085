"""Pieces of HTTP conditional requests shared by GET/HEAD and the copy-source conditions.

(``etag_matches`` is the metadata service's too: its one home is :mod:`objstore.s3rules`.)
"""
from __future__ import annotations

from email.utils import parsedate_to_datetime

from objstore.s3rules import etag_matches

__all__ = ["etag_matches", "parse_http_date"]


def parse_http_date(value: str | None) -> float | None:
    """An HTTP date header as unix seconds; None when absent or unparsable (S3 ignores it)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
