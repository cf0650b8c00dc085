"""objstore.percent: the same text as urllib's quote(text, safe="") for every input, and the
SigV4 canonical path unchanged by its fast path."""
from urllib.parse import quote, unquote_to_bytes

from gateway.auth.sigv4 import canonical_uri
from metadata.api.client import path_with_query
from objstore.node.client import blob_path
from objstore.percent import is_unreserved, quote_part

SAMPLES = ["", "abc", "AZaz09-_.~", "a b", "k/1", "a+b", "é", "a\n", "x%y", "%41", "日本", "a" * 500 + "/", "a*b"]


def test_quote_part_equals_quote_with_no_safe_characters():
    for text in SAMPLES:
        assert quote_part(text) == quote(text, safe=""), text
        assert is_unreserved(text) == (quote(text, safe="") == text), text


def test_canonical_uri_encodes_each_segment_as_before():
    for text in SAMPLES:
        path = f"/bucket/{text}/x"
        expected = "/".join(quote(unquote_to_bytes(seg), safe="-_.~") for seg in path.split("/"))
        assert canonical_uri(path) == expected, text


def test_paths_escape_what_needs_it():
    assert blob_path("0190-abc_1.2~", 3) == "/blobs/0190-abc_1.2~/3"
    assert blob_path("a/b c", 0) == "/blobs/a%2Fb%20c/0"
    assert path_with_query("/v1/object", {"bucket": "b-1", "key": "a/b c", "v": None, "n": 3}) == \
        "/v1/object?bucket=b-1&key=a%2Fb%20c&n=3"
