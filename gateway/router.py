"""Routing: a pure parse of an S3 request into an endpoint (:mod:`gateway.endpoints`).

``parse_endpoint`` looks only at the method, the Host header, the decoded path, the query
and the headers; it never touches the network. Bucket and key come from the path (path
style) or from the Host (virtual-hosted style, ``<bucket>.<suffix>``). The operation's
query values are parsed here, once: a malformed one is refused before any handler runs.
Sub-resources objstore does not implement raise ``NotImplementedOp`` so that no client
mistakes them for success.
"""
from __future__ import annotations

from typing import Mapping

from gateway.endpoints import OPERATIONS, Endpoint
from gateway.unsupported import refuse_unsupported_headers
from objstore.errors import InvalidArgument, KeyTooLongError, MethodNotAllowed, NotImplementedOp

MAX_KEY_BYTES = 1024

# Sub-resources that change what an operation means; any we do not list here is refused.
BUCKET_SUBRESOURCES_NOT_IMPLEMENTED = {
    "analytics", "cors", "encryption", "intelligent-tiering", "inventory", "lifecycle",
    "logging", "metrics", "notification", "object-lock", "ownershipControls", "policy",
    "policyStatus", "publicAccessBlock", "replication", "requestPayment",
    "website", "accelerate",
}
OBJECT_SUBRESOURCES_NOT_IMPLEMENTED = {
    "attributes", "legal-hold", "retention", "torrent", "restore", "select",
}


# Sub-resources objstore serves: name -> method -> operation (any other method: 405).
_BUCKET_SUBRESOURCE_OPS = {
    "versioning": {"GET": "GetBucketVersioning", "PUT": "PutBucketVersioning"},
    "versions": {"GET": "ListObjectVersions"},
    "tagging": {"GET": "GetBucketTagging", "PUT": "PutBucketTagging", "DELETE": "DeleteBucketTagging"},
    "acl": {"GET": "GetBucketAcl", "PUT": "PutBucketAcl"},
}
_OBJECT_SUBRESOURCE_OPS = {
    "tagging": {"GET": "GetObjectTagging", "PUT": "PutObjectTagging", "DELETE": "DeleteObjectTagging"},
    "acl": {"GET": "GetObjectAcl", "PUT": "PutObjectAcl"},
}


__all__ = ["BUCKET_SUBRESOURCES_NOT_IMPLEMENTED", "OBJECT_SUBRESOURCES_NOT_IMPLEMENTED", "OPERATIONS", "Endpoint",
           "parse_endpoint", "split_host_bucket"]


def split_host_bucket(host: str, suffixes: tuple[str, ...]) -> str | None:
    """The bucket named by a virtual-hosted-style Host header, or None for path style."""
    hostname = host.rsplit(":", 1)[0] if host and not host.endswith("]") else host
    hostname = (hostname or "").lower()
    for suffix in suffixes:
        s = suffix.lower()
        if hostname.endswith("." + s) and len(hostname) > len(s) + 1:
            return hostname[: -len(s) - 1]
    return None


def parse_endpoint(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    suffixes: tuple[str, ...] = ("localhost",),
    headers: Mapping[str, str] | None = None,
) -> Endpoint:
    """Map a request to the S3 operation it names.

    ``path`` is the percent-decoded path. Raises NotImplementedOp for sub-resources,
    operations and (when ``headers`` are given) headers objstore does not serve,
    MethodNotAllowed for methods S3 does not accept on the resource, KeyTooLongError for
    keys over 1024 bytes, and the S3 error of a malformed query value the operation reads
    (InvalidArgument for most).
    """
    method = method.upper()
    bucket = split_host_bucket(host, suffixes)
    if bucket is None:
        rest = path[1:] if path.startswith("/") else path
        if not rest:
            bucket_part, key = "", None
        else:
            bucket_part, sep, key_part = rest.partition("/")
            key = key_part if sep and key_part else None
        bucket = bucket_part or None
    else:
        k = path[1:] if path.startswith("/") else path
        key = k or None

    if key is not None and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise KeyTooLongError(Key=key[:64] + "...")

    if bucket is None:
        if method == "GET":
            return OPERATIONS["ListBuckets"].from_request("ListBuckets", None, None, query)
        raise MethodNotAllowed()

    hdrs = headers if headers is not None else {}
    op = _bucket_op(method, query) if key is None else _object_op(method, query, hdrs)
    refuse_unsupported_headers(op, method, key is not None, hdrs)
    return OPERATIONS[op].from_request(op, bucket, key, query)


def _bucket_op(method: str, query: Mapping[str, str]) -> str:
    if "location" in query:
        if method == "GET":
            return "GetBucketLocation"
        raise MethodNotAllowed()
    if "delete" in query:
        if method == "POST":
            return "DeleteObjects"
        raise MethodNotAllowed()
    sub = _subresource_op("bucket", BUCKET_SUBRESOURCES_NOT_IMPLEMENTED, _BUCKET_SUBRESOURCE_OPS, method, query)
    if sub is not None:
        return sub
    if "uploads" in query:
        if method == "GET":
            return "ListMultipartUploads"
        raise MethodNotAllowed()
    if method == "GET":
        if query.get("list-type") == "2":
            return "ListObjectsV2"
        if "list-type" in query:
            raise InvalidArgument("Invalid list-type", ArgumentName="list-type", ArgumentValue=query["list-type"])
        return "ListObjects"
    if method == "PUT":
        return "CreateBucket"
    if method == "HEAD":
        return "HeadBucket"
    if method == "DELETE":
        return "DeleteBucket"
    if method == "POST":
        raise NotImplementedOp("POST on a bucket (browser uploads) is not implemented.")
    raise MethodNotAllowed()


def _object_op(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    sub = _subresource_op("object", OBJECT_SUBRESOURCES_NOT_IMPLEMENTED, _OBJECT_SUBRESOURCE_OPS, method, query)
    if sub is not None:
        return sub
    if "versionId" in query and method in ("PUT", "POST"):
        raise NotImplementedOp("versionId is not implemented for this operation.")
    upload = _multipart_op(method, query, headers)
    if upload is not None:
        return upload
    if method == "GET":
        return "GetObject"  # with partNumber: one part
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if any(name.lower() == "x-amz-copy-source" for name in headers):
            return "CopyObject"
        return "PutObject"
    if method == "DELETE":
        return "DeleteObject"
    if method == "POST":
        raise NotImplementedOp("This POST operation is not implemented.")
    raise MethodNotAllowed()


def _multipart_op(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The multipart-upload operation a request on a key names, or None for another one."""
    if "uploads" in query:
        if method == "POST":
            return "CreateMultipartUpload"
        raise MethodNotAllowed()
    if "uploadId" not in query:
        if method == "PUT" and "partNumber" in query:
            raise InvalidArgument("partNumber requires uploadId.", ArgumentName="uploadId", ArgumentValue="")
        return None
    if method == "PUT":
        if "partNumber" not in query:
            raise InvalidArgument("uploadId requires partNumber.", ArgumentName="partNumber", ArgumentValue="")
        if any(name.lower() == "x-amz-copy-source" for name in headers):
            return "UploadPartCopy"
        return "UploadPart"
    ops = {"POST": "CompleteMultipartUpload", "GET": "ListParts", "DELETE": "AbortMultipartUpload"}
    if method in ops:
        return ops[method]
    raise MethodNotAllowed()


def _subresource_op(kind: str, not_implemented: set[str], table: Mapping[str, Mapping[str, str]], method: str,
                    query: Mapping[str, str]) -> str | None:
    """The operation a served sub-resource names for ``method`` (MethodNotAllowed for
    another method), or None when the query names none of them; NotImplementedOp when it
    names one of ``not_implemented`` (whatever else it names)."""
    unsupported = sorted(set(query) & not_implemented)
    if unsupported:
        raise NotImplementedOp(f"The {kind} sub-resource '{unsupported[0]}' is not implemented.")
    for name, ops in table.items():
        if name in query:
            op = ops.get(method)
            if op is None:
                raise MethodNotAllowed()
            return op
    return None
