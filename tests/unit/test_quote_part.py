"""objstore.node.client.quote_part: the same text as urllib's quote(text, safe="") for every input."""
from urllib.parse import quote

from objstore.node.client import blob_path, quote_part


def test_quote_part_equals_quote_with_no_safe_characters():
    samples = ["", "abc", "AZaz09-_.~", "a b", "k/1", "a+b", "é", "a\n", "x%y", "日本", "a" * 500 + "/"]
    for text in samples:
        assert quote_part(text) == quote(text, safe=""), text


def test_blob_path_escapes_what_needs_it():
    assert blob_path("0190-abc_1.2~", 3) == "/blobs/0190-abc_1.2~/3"
    assert blob_path("a/b c", 0) == "/blobs/a%2Fb%20c/0"
