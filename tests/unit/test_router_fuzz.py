"""Fuzzing the router: whatever the method, path, query and headers, ``parse_endpoint``
returns an endpoint or raises an S3 error with a 4xx status (or 501 for what objstore does
not implement), never anything else (which the gateway would answer with a 500).

The queries are built from every parameter name the router and the endpoints read, with
values meant to break integer and token parsing (non-ASCII digits, exponents, huge and
negative numbers, whitespace, underscores). CI runs a bounded number of examples; set
OBJSTORE_FUZZ_EXAMPLES for a longer run.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import router
from gateway.endpoints import RESPONSE_OVERRIDES
from gateway.query import MAX_KEYS
from objstore.errors import ObjstoreError

EXAMPLES = int(os.environ.get("OBJSTORE_FUZZ_EXAMPLES", "300"))

# Every query parameter the router and the endpoints look at.
PARAMS = sorted({
    "max-keys", "max-uploads", "max-parts", "part-number-marker", "partNumber", "uploadId", "uploads",
    "versionId", "version-id-marker", "key-marker", "upload-id-marker", "marker", "prefix", "delimiter",
    "encoding-type", "list-type", "continuation-token", "start-after", "fetch-owner", "location", "delete",
    "versioning", "versions", "tagging",
    *RESPONSE_OVERRIDES, *router.BUCKET_SUBRESOURCES_NOT_IMPLEMENTED, *router.OBJECT_SUBRESOURCES_NOT_IMPLEMENTED,
})

NASTY_VALUES = [
    "", "0", "1", "-1", "2", "10000", "10001", str(MAX_KEYS), "2147483647", "2147483648", "-2147483649",
    "9" * 30, "9" * 5000, "1e9", "1.5", " 5", "5 ", "+5", "1_000", "0x10", "²", "٣", "１２", "𝟓", "\u0000", "null",
    "url", "true", "2", "v1:", "djE6YQ==", "%", "\ud800", "NaN", "inf",
]

values = st.one_of(st.sampled_from(NASTY_VALUES), st.text(max_size=20),
                   st.integers(min_value=-(10**30), max_value=10**30).map(str))
queries = st.dictionaries(st.sampled_from(PARAMS), values, max_size=5)
methods = st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "get", ""])
paths = st.one_of(st.sampled_from(["/", "", "/b", "/b/", "/b/k", "/b/a/b/c", "/b/" + "k" * 1100]),
                  st.text(max_size=40).map(lambda s: "/" + s))
hosts = st.sampled_from(["127.0.0.1:9000", "b.localhost", "localhost", "", "[::1]:9000", "x.localhost:1"])
header_names = st.sampled_from(["x-amz-copy-source", "x-amz-copy-source-range", "Content-MD5", "x-amz-acl",
                                "x-amz-server-side-encryption", "x-amz-object-lock-mode", "x-amz-tagging",
                                "x-amz-storage-class", "x-amz-grant-read", "x-amz-website-redirect-location",
                                "Content-Type", "Range"])
headers = st.dictionaries(st.one_of(header_names, st.text(min_size=1, max_size=10)), values, max_size=4)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=methods, host=hosts, path=paths, query=queries, hdrs=headers)
def test_parse_endpoint_refuses_only_with_a_4xx_s3_error(method, host, path, query, hdrs):
    try:
        router.parse_endpoint(method, host, path, query, headers=hdrs)
    except ObjstoreError as exc:
        # a refusal is the client's fault, or a sub-resource objstore does not serve (501 NotImplemented)
        assert 400 <= exc.status < 500 or (exc.code, exc.status) == ("NotImplemented", 501), \
            (exc.code, exc.status, exc.message)


@pytest.mark.parametrize("name", ["partNumber", "max-keys", "max-uploads", "max-parts", "part-number-marker"])
@pytest.mark.parametrize("value", ["²", "٣", "１２", "1e9", "9" * 5000, "-1", "1_0", " 1", "+1"])
def test_malformed_integers_are_invalid_argument(name, value):
    query = {name: value}
    if name in ("partNumber", "max-parts", "part-number-marker"):
        query["uploadId"] = "u"
    method = "GET" if name != "partNumber" else "PUT"
    path = "/b" if name in ("max-keys", "max-uploads") else "/b/k"
    if name == "max-uploads":
        query["uploads"] = ""
    with pytest.raises(ObjstoreError) as e:
        router.parse_endpoint(method, "127.0.0.1", path, query)
    assert (e.value.code, e.value.status) == ("InvalidArgument", 400)
