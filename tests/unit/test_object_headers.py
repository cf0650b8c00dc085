"""What a write's headers store: the aws-chunked coding is never part of Content-Encoding."""
from __future__ import annotations

import pytest

from gateway.object_headers import stored_headers


@pytest.mark.parametrize("sent,stored", [
    ("aws-chunked,gzip", "gzip"), ("aws-chunked", None), ("gzip, aws-chunked", "gzip"), ("AWS-Chunked", None),
    ("gzip,br", "gzip, br"), ("identity", "identity"),
])
def test_aws_chunked_is_dropped_from_content_encoding(sent, stored):
    _, kept, _ = stored_headers({"content-encoding": sent})
    assert kept.get("content-encoding") == stored
