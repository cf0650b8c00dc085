"""What the router hands a handler: one frozen dataclass per operation group, carrying the
bucket, the key and every query value the operation reads, already parsed and validated.

Each type's ``from_request(op, bucket, key, query)`` is pure and raises the S3 error for a
malformed value (:mod:`gateway.query`), so a handler never reads the query and never sees a
bad value. Every endpoint has ``op``, ``bucket`` and ``key`` (None where the operation
names no bucket or no key).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Union
from urllib.parse import quote_plus

from gateway import query as q

Query = Mapping[str, str]

# GET/HEAD query parameters that override a response header, as S3 serves them.
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def _url_encode(name: str) -> str:
    """As S3 encodes names for ``encoding-type=url`` (form encoding: a space is ``+``; only
    letters, digits, ``-_.*`` and ``/`` are left as they are; UTF-8 bytes are ``%XX``)."""
    return quote_plus(name, safe="/*").replace("~", "%7E")


def _as_is(name: str) -> str:
    return name


def url_encoder(encoding_type: str | None) -> Callable[[str], str]:
    """How names appear in a listing: URL-encoded (``/`` kept) for ``encoding-type=url``."""
    return _url_encode if encoding_type == "url" else _as_is


@dataclass(frozen=True, slots=True)
class ListingScope:
    """The query values every listing shares: which names, how they roll up and print."""

    prefix: str = ""
    delimiter: str | None = None
    encoding_type: str | None = None

    @classmethod
    def from_query(cls, query: Query) -> ListingScope:
        enc = q.encoding_type(query)
        return cls(query.get("prefix", ""), query.get("delimiter") or None, enc)

    def encode(self, name: str) -> str:
        return url_encoder(self.encoding_type)(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEndpoint:
    """ListBuckets: no bucket, no key; a page of at most ``max_buckets`` bucket names
    starting with ``prefix``, after the one ``continuation_token`` stands for (``after``),
    in ``bucket_region`` if given."""

    op: str
    bucket: None = None
    key: None = None
    prefix: str | None = None
    max_buckets: int = q.MAX_BUCKETS
    continuation_token: str | None = None
    after: str = ""
    bucket_region: str | None = None

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ServiceEndpoint:
        token, after = q.continuation(query)
        return cls(op=op, prefix=query.get("prefix"), max_buckets=q.max_buckets(query), continuation_token=token,
                   after=after, bucket_region=query.get("bucket-region"))


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketEndpoint:
    """A bucket operation that reads nothing from the query."""

    op: str
    bucket: str
    key: None = None

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> BucketEndpoint:
        assert bucket is not None
        return cls(op=op, bucket=bucket)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectEndpoint:
    """An object operation that reads nothing from the query (PutObject, CopyObject,
    CreateMultipartUpload)."""

    op: str
    bucket: str
    key: str

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ObjectEndpoint:
        assert bucket is not None and key is not None
        return cls(op=op, bucket=bucket, key=key)


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionEndpoint:
    """An operation on the current version of a key, or the one ``versionId`` names."""

    op: str
    bucket: str
    key: str
    version_id: str | None = None

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> VersionEndpoint:
        assert bucket is not None and key is not None
        return cls(op=op, bucket=bucket, key=key, version_id=q.version_id(query))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadEndpoint:
    """GetObject and HeadObject: a version, maybe one part of it, maybe header overrides."""

    op: str
    bucket: str
    key: str
    version_id: str | None = None
    part_number: int | None = None
    response_headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ReadEndpoint:
        assert bucket is not None and key is not None
        vid = q.version_id(query)
        number = q.part_number(query) if "partNumber" in query else None
        overrides = tuple((header, query[param]) for param, header in RESPONSE_OVERRIDES.items() if param in query)
        return cls(op=op, bucket=bucket, key=key, version_id=vid, part_number=number, response_headers=overrides)


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadEndpoint:
    """CompleteMultipartUpload and AbortMultipartUpload: one upload."""

    op: str
    bucket: str
    key: str
    upload_id: str

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> UploadEndpoint:
        assert bucket is not None and key is not None
        return cls(op=op, bucket=bucket, key=key, upload_id=query["uploadId"])


@dataclass(frozen=True, slots=True, kw_only=True)
class PartEndpoint:
    """UploadPart and UploadPartCopy: one part (1..10000) of one upload."""

    op: str
    bucket: str
    key: str
    upload_id: str
    part_number: int

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> PartEndpoint:
        assert bucket is not None and key is not None
        return cls(op=op, bucket=bucket, key=key, upload_id=query["uploadId"], part_number=q.part_number(query))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListPartsEndpoint:
    """ListParts: one upload's parts after ``part_number_marker``, ``max_parts`` (<= 1000) of them."""

    op: str
    bucket: str
    key: str
    upload_id: str
    part_number_marker: int = 0
    max_parts: int = q.MAX_KEYS
    encoding_type: str | None = None

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ListPartsEndpoint:
        assert bucket is not None and key is not None
        marker = q.bounded_int(query, "part-number-marker", 0)
        max_parts = min(q.bounded_int(query, "max-parts", q.MAX_KEYS), q.MAX_KEYS)
        return cls(op=op, bucket=bucket, key=key, upload_id=query["uploadId"], part_number_marker=marker,
                   max_parts=max_parts, encoding_type=q.encoding_type(query))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Listing:
    """What every listing of a bucket names: the bucket, which names (rolled up how), and
    the key the page starts after ("" for the first page): ListObjects' ``marker``,
    ListObjectsV2's continuation token (decoded) or ``start-after``, the ``key-marker`` of
    ListObjectVersions and ListMultipartUploads."""

    op: str
    bucket: str
    key: None = None
    scope: ListingScope = ListingScope()
    key_marker: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListObjectsEndpoint(_Listing):
    """ListObjects (v1): a page of keys after ``marker``."""

    max_keys: int = q.MAX_KEYS

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ListObjectsEndpoint:
        assert bucket is not None
        return cls(op=op, bucket=bucket, max_keys=q.max_keys(query), scope=ListingScope.from_query(query),
                   key_marker=query.get("marker", ""))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListObjectsV2Endpoint(_Listing):
    """ListObjectsV2: a page of keys after the continuation token's marker, or ``start_after``."""

    max_keys: int = q.MAX_KEYS
    continuation_token: str | None = None
    start_after: str | None = None
    fetch_owner: bool = False

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ListObjectsV2Endpoint:
        assert bucket is not None
        n, scope = q.max_keys(query), ListingScope.from_query(query)
        (token, marker), start_after = q.continuation(query), query.get("start-after")
        after = marker if token is not None else start_after
        return cls(op=op, bucket=bucket, max_keys=n, scope=scope, continuation_token=token,
                   start_after=start_after, fetch_owner=query.get("fetch-owner") == "true", key_marker=after or "")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListVersionsEndpoint(_Listing):
    """ListObjectVersions: a page of versions after (``key_marker``, ``version_id_marker``)."""

    max_keys: int = q.MAX_KEYS
    version_id_marker: str = ""

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ListVersionsEndpoint:
        assert bucket is not None
        n, scope = q.max_keys(query), ListingScope.from_query(query)
        key_marker = query.get("key-marker", "")
        return cls(op=op, bucket=bucket, max_keys=n, scope=scope, key_marker=key_marker,
                   version_id_marker=q.version_id_marker(query, key_marker))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListUploadsEndpoint(_Listing):
    """ListMultipartUploads: a page of uploads after (``key_marker``, ``upload_id_marker``)."""

    max_uploads: int = q.MAX_KEYS
    upload_id_marker: str = ""

    @classmethod
    def from_request(cls, op: str, bucket: str | None, key: str | None, query: Query) -> ListUploadsEndpoint:
        assert bucket is not None
        max_uploads = min(q.bounded_int(query, "max-uploads", q.MAX_KEYS), q.MAX_KEYS)
        return cls(op=op, bucket=bucket, max_uploads=max_uploads, scope=ListingScope.from_query(query),
                   key_marker=query.get("key-marker", ""), upload_id_marker=query.get("upload-id-marker", ""))


Endpoint = Union[
    ServiceEndpoint, BucketEndpoint, ObjectEndpoint, VersionEndpoint, ReadEndpoint, UploadEndpoint, PartEndpoint,
    ListPartsEndpoint, ListObjectsEndpoint, ListObjectsV2Endpoint, ListVersionsEndpoint, ListUploadsEndpoint,
]

# Every operation the router can name, and the endpoint type it is parsed into.
OPERATIONS: Mapping[str, type] = {
    "ListBuckets": ServiceEndpoint,
    "CreateBucket": BucketEndpoint,
    "HeadBucket": BucketEndpoint,
    "DeleteBucket": BucketEndpoint,
    "GetBucketLocation": BucketEndpoint,
    "DeleteObjects": BucketEndpoint,
    "GetBucketVersioning": BucketEndpoint,
    "PutBucketVersioning": BucketEndpoint,
    "GetBucketTagging": BucketEndpoint,
    "PutBucketTagging": BucketEndpoint,
    "DeleteBucketTagging": BucketEndpoint,
    "GetBucketAcl": BucketEndpoint,
    "PutBucketAcl": BucketEndpoint,
    "ListObjects": ListObjectsEndpoint,
    "ListObjectsV2": ListObjectsV2Endpoint,
    "ListObjectVersions": ListVersionsEndpoint,
    "ListMultipartUploads": ListUploadsEndpoint,
    "PutObject": ObjectEndpoint,
    "CopyObject": ObjectEndpoint,
    "CreateMultipartUpload": ObjectEndpoint,
    "GetObject": ReadEndpoint,
    "HeadObject": ReadEndpoint,
    "DeleteObject": VersionEndpoint,
    "GetObjectTagging": VersionEndpoint,
    "PutObjectTagging": VersionEndpoint,
    "DeleteObjectTagging": VersionEndpoint,
    "GetObjectAcl": VersionEndpoint,
    "PutObjectAcl": VersionEndpoint,
    "UploadPart": PartEndpoint,
    "UploadPartCopy": PartEndpoint,
    "CompleteMultipartUpload": UploadEndpoint,
    "AbortMultipartUpload": UploadEndpoint,
    "ListParts": ListPartsEndpoint,
}
