"""The router as a table: every S3 operation it can name, the endpoint it parses the request
into (query values included), and the S3 error of every malformed value it refuses.

Pure: ``parse_endpoint`` without a server. The coverage tests fail when the router learns an
operation (or a refused sub-resource) that has no row here.
"""
from __future__ import annotations

import pytest

from gateway import endpoints as e
from gateway.query import encode_token
from gateway.router import (
    BUCKET_SUBRESOURCES_NOT_IMPLEMENTED, OBJECT_SUBRESOURCES_NOT_IMPLEMENTED, OPERATIONS, parse_endpoint,
)
from objstore.errors import ObjstoreError

VID = "01a216d0f43c0000-gw1"
COPY = {"x-amz-copy-source": "src/k"}
URL = e.ListingScope(encoding_type="url")

# method, path, query, headers -> the endpoint parse_endpoint returns
ROUTES = [
    ("GET", "/", {}, {}, e.ServiceEndpoint(op="ListBuckets")),
    ("PUT", "/b", {}, {}, e.BucketEndpoint(op="CreateBucket", bucket="b")),
    ("HEAD", "/b", {}, {}, e.BucketEndpoint(op="HeadBucket", bucket="b")),
    ("DELETE", "/b", {}, {}, e.BucketEndpoint(op="DeleteBucket", bucket="b")),
    ("GET", "/b", {"location": ""}, {}, e.BucketEndpoint(op="GetBucketLocation", bucket="b")),
    ("POST", "/b", {"delete": ""}, {}, e.BucketEndpoint(op="DeleteObjects", bucket="b")),
    ("GET", "/b", {"versioning": ""}, {}, e.BucketEndpoint(op="GetBucketVersioning", bucket="b")),
    ("PUT", "/b", {"versioning": ""}, {}, e.BucketEndpoint(op="PutBucketVersioning", bucket="b")),
    ("GET", "/b", {"tagging": ""}, {}, e.BucketEndpoint(op="GetBucketTagging", bucket="b")),
    ("PUT", "/b", {"tagging": ""}, {}, e.BucketEndpoint(op="PutBucketTagging", bucket="b")),
    ("DELETE", "/b", {"tagging": ""}, {}, e.BucketEndpoint(op="DeleteBucketTagging", bucket="b")),
    ("GET", "/b", {"acl": ""}, {}, e.BucketEndpoint(op="GetBucketAcl", bucket="b")),
    ("PUT", "/b", {"acl": ""}, {"x-amz-acl": "private"}, e.BucketEndpoint(op="PutBucketAcl", bucket="b")),
    ("GET", "/b", {"prefix": "p/", "delimiter": "/", "max-keys": "5", "marker": "p/a", "encoding-type": "url"}, {},
     e.ListObjectsEndpoint(op="ListObjects", bucket="b", max_keys=5, key_marker="p/a",
                           scope=e.ListingScope("p/", "/", "url"))),
    ("GET", "/b", {"list-type": "2", "max-keys": "5000", "continuation-token": encode_token("k9"),
                   "start-after": "a", "fetch-owner": "true"}, {},
     e.ListObjectsV2Endpoint(op="ListObjectsV2", bucket="b", max_keys=1000, continuation_token=encode_token("k9"),
                             start_after="a", fetch_owner=True, key_marker="k9")),
    ("GET", "/b", {"versions": "", "key-marker": "k", "version-id-marker": VID, "max-keys": "2",
                   "encoding-type": "url"}, {},
     e.ListVersionsEndpoint(op="ListObjectVersions", bucket="b", max_keys=2, scope=URL, key_marker="k",
                            version_id_marker=VID)),
    ("GET", "/b", {"uploads": "", "max-uploads": "3", "key-marker": "k", "upload-id-marker": "u", "prefix": "x",
                   "delimiter": ""}, {},
     e.ListUploadsEndpoint(op="ListMultipartUploads", bucket="b", max_uploads=3, scope=e.ListingScope("x"),
                           key_marker="k", upload_id_marker="u")),
    ("PUT", "/b/k", {}, {}, e.ObjectEndpoint(op="PutObject", bucket="b", key="k")),
    ("PUT", "/b/k", {}, COPY, e.ObjectEndpoint(op="CopyObject", bucket="b", key="k")),
    ("POST", "/b/k", {"uploads": ""}, {}, e.ObjectEndpoint(op="CreateMultipartUpload", bucket="b", key="k")),
    ("GET", "/b/dir/k", {"versionId": VID, "partNumber": "2", "response-content-type": "text/plain"}, {},
     e.ReadEndpoint(op="GetObject", bucket="b", key="dir/k", version_id=VID, part_number=2,
                    response_headers=(("Content-Type", "text/plain"),))),
    ("HEAD", "/b/k", {"versionId": "null"}, {}, e.ReadEndpoint(op="HeadObject", bucket="b", key="k", version_id="null")),
    ("DELETE", "/b/k", {"versionId": VID}, {}, e.VersionEndpoint(op="DeleteObject", bucket="b", key="k", version_id=VID)),
    ("GET", "/b/k", {"tagging": ""}, {}, e.VersionEndpoint(op="GetObjectTagging", bucket="b", key="k")),
    ("PUT", "/b/k", {"tagging": "", "versionId": "null"}, {},
     e.VersionEndpoint(op="PutObjectTagging", bucket="b", key="k", version_id="null")),
    ("DELETE", "/b/k", {"tagging": ""}, {}, e.VersionEndpoint(op="DeleteObjectTagging", bucket="b", key="k")),
    ("GET", "/b/k", {"acl": "", "versionId": VID}, {},
     e.VersionEndpoint(op="GetObjectAcl", bucket="b", key="k", version_id=VID)),
    ("PUT", "/b/k", {"acl": ""}, {}, e.VersionEndpoint(op="PutObjectAcl", bucket="b", key="k")),
    ("PUT", "/b/k", {"uploadId": "u", "partNumber": "7"}, {},
     e.PartEndpoint(op="UploadPart", bucket="b", key="k", upload_id="u", part_number=7)),
    ("PUT", "/b/k", {"uploadId": "u", "partNumber": "10000"}, COPY,
     e.PartEndpoint(op="UploadPartCopy", bucket="b", key="k", upload_id="u", part_number=10000)),
    ("POST", "/b/k", {"uploadId": "u"}, {}, e.UploadEndpoint(op="CompleteMultipartUpload", bucket="b", key="k",
                                                              upload_id="u")),
    ("DELETE", "/b/k", {"uploadId": "u"}, {}, e.UploadEndpoint(op="AbortMultipartUpload", bucket="b", key="k",
                                                                upload_id="u")),
    ("GET", "/b/k", {"uploadId": "u", "part-number-marker": "3", "max-parts": "2000", "encoding-type": "url"}, {},
     e.ListPartsEndpoint(op="ListParts", bucket="b", key="k", upload_id="u", part_number_marker=3, max_parts=1000,
                         encoding_type="url")),
]

# method, path, query, headers -> the S3 error code
REFUSED = [
    # malformed query values
    ("GET", "/b", {"max-keys": "ten"}, {}, "InvalidArgument"),
    ("GET", "/b", {"max-keys": "-1"}, {}, "InvalidArgument"),
    ("GET", "/b", {"encoding-type": "base64"}, {}, "InvalidArgument"),
    ("GET", "/b", {"list-type": "3"}, {}, "InvalidArgument"),
    ("GET", "/b", {"list-type": "2", "continuation-token": "not-a-token"}, {}, "InvalidArgument"),
    ("GET", "/b", {"list-type": "2", "max-keys": "x"}, {}, "InvalidArgument"),
    ("GET", "/b", {"versions": "", "version-id-marker": VID}, {}, "InvalidArgument"),
    ("GET", "/b", {"versions": "", "key-marker": "k", "version-id-marker": "garbage!"}, {}, "InvalidArgument"),
    ("GET", "/b", {"versions": "", "encoding-type": "base64"}, {}, "InvalidArgument"),
    ("GET", "/b", {"uploads": "", "max-uploads": "-1"}, {}, "InvalidArgument"),
    ("GET", "/b", {"uploads": "", "max-uploads": "2147483648"}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"versionId": ""}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"versionId": "not a version"}, {}, "InvalidArgument"),
    ("HEAD", "/b/k", {"versionId": "bogus!"}, {}, "InvalidArgument"),
    ("DELETE", "/b/k", {"versionId": "bogus!"}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"tagging": "", "versionId": "bogus!"}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"partNumber": "0"}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"partNumber": "10001"}, {}, "InvalidArgument"),
    ("HEAD", "/b/k", {"partNumber": "x"}, {}, "InvalidArgument"),
    ("PUT", "/b/k", {"uploadId": "u", "partNumber": "0"}, {}, "InvalidArgument"),
    ("PUT", "/b/k", {"uploadId": "u", "partNumber": "1.5"}, COPY, "InvalidArgument"),
    ("PUT", "/b/k", {"uploadId": "u"}, {}, "InvalidArgument"),
    ("PUT", "/b/k", {"partNumber": "1"}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"uploadId": "u", "max-parts": "many"}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"uploadId": "u", "part-number-marker": "-2"}, {}, "InvalidArgument"),
    ("GET", "/b/k", {"uploadId": "u", "encoding-type": "none"}, {}, "InvalidArgument"),
    # methods S3 does not accept on the resource
    ("POST", "/", {}, {}, "MethodNotAllowed"),
    ("PATCH", "/b", {}, {}, "MethodNotAllowed"),
    ("PUT", "/b", {"location": ""}, {}, "MethodNotAllowed"),
    ("GET", "/b", {"delete": ""}, {}, "MethodNotAllowed"),
    ("PUT", "/b", {"uploads": ""}, {}, "MethodNotAllowed"),
    ("GET", "/b/k", {"uploads": ""}, {}, "MethodNotAllowed"),
    ("HEAD", "/b/k", {"uploadId": "u"}, {}, "MethodNotAllowed"),
    ("POST", "/b/k", {"tagging": ""}, {}, "MethodNotAllowed"),
    ("DELETE", "/b", {"acl": ""}, {}, "MethodNotAllowed"),
    ("DELETE", "/b/k", {"acl": ""}, {}, "MethodNotAllowed"),
    # operations objstore routes but does not implement
    ("POST", "/b", {}, {}, "NotImplemented"),
    ("POST", "/b/k", {}, {}, "NotImplemented"),
    ("PUT", "/b/k", {"versionId": "null"}, {}, "NotImplemented"),
    ("PUT", "/b/k", {}, {"x-amz-server-side-encryption": "AES256"}, "NotImplemented"),
    ("PUT", "/b", {"acl": ""}, {"x-amz-acl": "public-read"}, "NotImplemented"),
    ("PUT", "/b", {"acl": ""}, {"x-amz-grant-read": "id=x"}, "NotImplemented"),
    ("PUT", "/b/k", {"acl": ""}, {"x-amz-acl": "public-read"}, "NotImplemented"),
    ("PUT", "/b/k", {"acl": ""}, {"x-amz-grant-full-control": "id=x"}, "NotImplemented"),
    # names too long
    ("GET", "/b/" + "k" * 1025, {}, {}, "KeyTooLongError"),
]


def route(method: str, path: str, query: dict[str, str], headers: dict[str, str]):
    return parse_endpoint(method, "127.0.0.1:9000", path, query, headers=headers)


def _row_id(row: tuple) -> str:
    method, path, query, _, want = row
    return f"{method} {path[:20]}?{'&'.join(query)} -> {getattr(want, 'op', want)}"


@pytest.mark.parametrize("method,path,query,headers,want", ROUTES, ids=[_row_id(r) for r in ROUTES])
def test_route(method, path, query, headers, want):
    ep = route(method, path, query, headers)
    assert type(ep) is OPERATIONS[want.op]
    assert ep == want


@pytest.mark.parametrize("method,path,query,headers,code", REFUSED, ids=[_row_id(r) for r in REFUSED])
def test_refused(method, path, query, headers, code):
    with pytest.raises(ObjstoreError) as exc:
        route(method, path, query, headers)
    assert exc.value.code == code


@pytest.mark.parametrize("name", sorted(BUCKET_SUBRESOURCES_NOT_IMPLEMENTED))
def test_unimplemented_bucket_sub_resources(name):
    with pytest.raises(ObjstoreError) as exc:
        route("GET", "/b", {name: ""}, {})
    assert exc.value.code == "NotImplemented"


@pytest.mark.parametrize("name", sorted(OBJECT_SUBRESOURCES_NOT_IMPLEMENTED))
def test_unimplemented_object_sub_resources(name):
    with pytest.raises(ObjstoreError) as exc:
        route("GET", "/b/k", {name: ""}, {})
    assert exc.value.code == "NotImplemented"


def test_every_operation_has_a_row():
    assert sorted({row[-1].op for row in ROUTES}) == sorted(OPERATIONS)


def test_virtual_hosted_style_names_the_bucket_by_host():
    ep = parse_endpoint("GET", "b.s3.example:9000", "/dir/k", {"versionId": VID}, ("s3.example",))
    assert ep == e.ReadEndpoint(op="GetObject", bucket="b", key="dir/k", version_id=VID)
