"""What gateway.auth.sign signs, gateway.auth.sigv4 verifies: keys, spaces, non-ASCII, queries."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.auth.sign import SigV4Signer, encode_path, encode_query
from gateway.auth.sigv4 import verify
from objstore.errors import SignatureDoesNotMatch

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("path, query", [
    ("/b/a key/ü+x", {"list-type": "2", "prefix": "a b"}),
    ("/b/100%/~tilde", None),
    ("/b", {"uploads": ""}),
])
def test_signed_request_verifies(path, query):
    signer = SigV4Signer("AKID", "SECRET/KEY", "eu-west-1", clock=lambda: NOW)
    headers = signer.sign("PUT", "127.0.0.1:9000", path, query=query, headers={"x-amz-meta-a": " one  two "})
    ctx = verify("PUT", encode_path(path), encode_query(query), headers, {"AKID": "SECRET/KEY"}.get, NOW)
    assert ctx.access_key == "AKID" and ctx.payload_mode == "unsigned" and ctx.region == "eu-west-1"
    with pytest.raises(SignatureDoesNotMatch):
        verify("PUT", encode_path(path), encode_query(query), headers, {"AKID": "other"}.get, NOW)
