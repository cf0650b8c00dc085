"""Routing of the versioning and tagging sub-resources (a pure parse, no server)."""
from __future__ import annotations

import pytest

from gateway.router import Endpoint, parse_endpoint
from objstore.errors import MethodNotAllowed, NotImplementedOp


def route(method: str, path: str, **query: str) -> Endpoint:
    return parse_endpoint(method, "127.0.0.1:9000", path, query)


@pytest.mark.parametrize("method,path,query,op", [
    ("GET", "/b", {"versioning": ""}, "GetBucketVersioning"),
    ("PUT", "/b", {"versioning": ""}, "PutBucketVersioning"),
    ("GET", "/b", {"versions": "", "prefix": "a/"}, "ListObjectVersions"),
    ("GET", "/b", {"tagging": ""}, "GetBucketTagging"),
    ("PUT", "/b", {"tagging": ""}, "PutBucketTagging"),
    ("DELETE", "/b", {"tagging": ""}, "DeleteBucketTagging"),
    ("GET", "/b/k", {"tagging": ""}, "GetObjectTagging"),
    ("PUT", "/b/k", {"tagging": "", "versionId": "null"}, "PutObjectTagging"),
    ("DELETE", "/b/k", {"tagging": ""}, "DeleteObjectTagging"),
    ("GET", "/b/k", {"versionId": "null"}, "GetObject"),
    ("HEAD", "/b/k", {"versionId": "null"}, "HeadObject"),
    ("DELETE", "/b/k", {"versionId": "null"}, "DeleteObject"),
])
def test_served_sub_resources(method, path, query, op):
    ep = route(method, path, **query)
    assert ep.op == op and ep.bucket == "b" and ep.key == (None if path == "/b" else "k")


@pytest.mark.parametrize("method,path,query", [
    ("DELETE", "/b", {"versioning": ""}),
    ("POST", "/b", {"versions": ""}),
    ("PUT", "/b", {"versions": ""}),
    ("POST", "/b/k", {"tagging": ""}),
    ("HEAD", "/b", {"tagging": ""}),
])
def test_other_methods_on_them_are_not_allowed(method, path, query):
    with pytest.raises(MethodNotAllowed):
        route(method, path, **query)


def test_version_id_on_a_write_and_unserved_sub_resources_stay_refused():
    with pytest.raises(NotImplementedOp):
        route("PUT", "/b/k", versionId="null")
    with pytest.raises(NotImplementedOp):
        route("GET", "/b", versioning="", policy="")
    with pytest.raises(NotImplementedOp):
        route("GET", "/b/k", tagging="", retention="")
