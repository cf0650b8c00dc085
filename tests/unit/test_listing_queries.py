"""Listing query values: ListBuckets pages (prefix, max-buckets, continuation token,
bucket-region), ListObjectsV2 continuation tokens, and names encoded for encoding-type=url."""
from __future__ import annotations

from urllib.parse import unquote_plus

import pytest

from gateway.endpoints import ListingScope, ListObjectsV2Endpoint, ServiceEndpoint
from gateway.handlers.bucket import bucket_page
from objstore.errors import InvalidArgument
from objstore.types import Bucket

BUCKETS = [Bucket(n, "o", 1.0, "replica:2") for n in ("b", "a", "ab", "c", "ac")]


def page(query: dict[str, str]) -> tuple[list[str], str | None]:
    got, token = bucket_page(BUCKETS, ServiceEndpoint.from_request("ListBuckets", None, None, query), "us-east-1")
    return [b.name for b in got], token


def test_pages_follow_one_another_in_name_order():
    names, token = page({"max-buckets": "2"})
    assert names == ["a", "ab"] and token
    names, token = page({"max-buckets": "2", "continuation-token": token})
    assert names == ["ac", "b"] and token
    assert page({"max-buckets": "2", "continuation-token": token}) == (["c"], None)


def test_prefix_region_and_defaults():
    assert page({"prefix": "a"}) == (["a", "ab", "ac"], None)
    assert page({}) == (["a", "ab", "ac", "b", "c"], None)
    assert page({"continuation-token": ""}) == (["a", "ab", "ac", "b", "c"], None)
    assert page({"bucket-region": "eu-west-1"}) == ([], None)
    assert page({"bucket-region": "us-east-1", "max-buckets": "1"})[0] == ["a"]


@pytest.mark.parametrize("query", [{"max-buckets": "0"}, {"max-buckets": "10001"}, {"max-buckets": "-1"},
                                   {"continuation-token": "garbage"}])
def test_malformed_values_are_invalid_argument(query):
    with pytest.raises(InvalidArgument):
        ServiceEndpoint.from_request("ListBuckets", None, None, query)


@pytest.mark.parametrize("name,encoded", [
    ("a b/c", "a+b/c"), ("plus+", "plus%2B"), ("\n", "%0A"), ("caf\u00e9", "caf%C3%A9"), ("t~s*", "t%7Es*"),
    ("-_.", "-_."), ("%&=?#", "%25%26%3D%3F%23"),
])
def test_listing_names_are_url_encoded_as_s3_encodes_them(name, encoded):
    assert ListingScope(encoding_type="url").encode(name) == encoded
    assert unquote_plus(encoded) == name  # what botocore decodes


def test_empty_continuation_token_is_the_first_page():
    ep = ListObjectsV2Endpoint.from_request("ListObjectsV2", "b", None, {"list-type": "2", "continuation-token": ""})
    assert ep.continuation_token is None and ep.key_marker == ""
    ep = ListObjectsV2Endpoint.from_request("ListObjectsV2", "b", None, {"continuation-token": "", "start-after": "k"})
    assert ep.key_marker == "k"
