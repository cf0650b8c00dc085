"""SigV4 and the router read a query string the same way (``+`` is a space, for both).

The router reads ``request.rel_url.query`` (yarl); SigV4 builds its canonical query from
the raw query. For any query, the strict canonical reading must be the canonical form of
exactly the parameters the router sees, or a signature made for one set of parameters
could be served with another.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from gateway.auth import sigv4

EXAMPLES = int(os.environ.get("OBJSTORE_FUZZ_EXAMPLES", "300"))

# Query text pieces: plain characters, '+', valid percent-encoded UTF-8, '=' inside values.
_piece = st.one_of(
    st.text(alphabet="abcXYZ019-_.~!$'()*,;:@/?", min_size=1, max_size=4),
    st.just("+"),
    st.just("="),
    st.text(min_size=1, max_size=3).filter(lambda t: "\x00" not in t).map(
        lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")),
)
_component = st.lists(_piece, max_size=5).map("".join)
_pair = st.tuples(_component.filter(lambda n: "=" not in n), _component, st.booleans()).map(
    lambda p: p[0] + ("=" + p[1] if p[2] or p[1] else ""))
_query = st.lists(_pair, max_size=5).map("&".join)


def router_reading(raw_query: str) -> list[tuple[str, str]]:
    return list(URL("/b/k?" + raw_query, encoded=True).query.items())


def canonical_of(pairs: list[tuple[str, str]]) -> str:
    enc = sorted((quote(n.encode("utf-8", "surrogatepass"), safe="-_.~"),
                  quote(v.encode("utf-8", "surrogatepass"), safe="-_.~")) for n, v in pairs)
    return "&".join(f"{n}={v}" for n, v in enc)


def parse(path: str, raw: str) -> sigv4.ParsedRequest:
    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/s3/aws4_request, "
                                "SignedHeaders=host;x-amz-date, Signature=00",
               "x-amz-date": "20240101T000000Z", "host": "h", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    return sigv4.parse_request("GET", path, raw, headers, datetime(2024, 1, 1, tzinfo=timezone.utc))


def _valid_utf8(pairs: list[tuple[str, str]]) -> bool:
    return not any("\ufffd" in n + v for n, v in pairs)


@settings(max_examples=EXAMPLES, deadline=None)
@given(raw=_query)
def test_canonical_query_is_the_router_reading(raw: str) -> None:
    pairs = router_reading(raw)
    if not _valid_utf8(pairs):
        return
    assert sigv4.canonical_query(raw, plus_as_space=True) == canonical_of(pairs)
    parsed = parse("/b/k", raw)
    assert sigv4.canonical_request_candidates(parsed)[0].split("\n")[2] == canonical_of(pairs)


@settings(max_examples=EXAMPLES, deadline=None)
@given(raw=_query)
def test_presigned_parameters_are_the_router_reading(raw: str) -> None:
    pairs = router_reading(raw)
    first: dict[str, str] = {}
    for n, v in pairs:
        first.setdefault(n, v)
    assert sigv4._query_params(raw) == first


def test_plus_is_a_space_for_both() -> None:
    raw = "prefix=a+b&list-type=2"
    assert dict(router_reading(raw))["prefix"] == "a b"
    assert sigv4.canonical_query(raw, plus_as_space=True) == "list-type=2&prefix=a%20b"
    parsed = parse("/b", raw)
    queries = {c.split("\n")[2] for c in sigv4.canonical_request_candidates(parsed)}
    assert "list-type=2&prefix=a%2Bb" not in queries  # a literal-plus signature is not served as a space
