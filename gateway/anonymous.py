"""Who may read without owning: anonymous callers, and signed callers of other owners.

Pure decisions (no IO) on records already fetched:
- :func:`is_anonymous`: a request that carries no signature at all (no ``Authorization``
  header, no presigned-URL query parameter) is anonymous; it gets :data:`ANONYMOUS` as its
  caller instead of 403.
- :func:`check_anonymous_op`: an anonymous caller may only attempt :data:`ANONYMOUS_OPS`
  (reads); every other operation is 403 AccessDenied before any handler runs, and a read
  with ``response-*`` header overrides is 400 InvalidRequest, as in S3.
- :func:`may_read`, :func:`may_list`, :func:`may_locate`: what S3 grants everyone through
  the bucket policy (:mod:`objstore.bucket_policy`) and the canned ACL public-read.

Invariants: anonymous access never writes and never reads anything but an object (a
version marked public-read, or a key the policy grants s3:GetObject on), a bucket's keys
(a bucket marked public-read, or a policy granting s3:ListBucket) or a bucket's region
(s3:GetBucketLocation). A bucket policy grants s3:GetObject only, never
s3:GetObjectVersion, so a read naming a ``versionId`` is allowed only by the version's own
public-read ACL (S3's object READ grant covers every version read). The canned ACL
public-read on a bucket opens listing, not its objects.
"""
from __future__ import annotations

from typing import Mapping

from gateway.auth.sigv4 import AuthContext
from gateway.caller import Caller
from gateway.endpoints import Endpoint
from gateway.unsupported import ACCEPTED_BUCKET_ACLS, ACCEPTED_OBJECT_ACLS
from objstore import bucket_policy as bp
from objstore.errors import AccessDenied, InvalidRequest, NotImplementedOp
from objstore.types import Bucket, ObjectVersion

# Owner id of the anonymous caller: no credential can act for it (ids never hold NUL).
ANONYMOUS_OWNER = "\x00anonymous"
ANONYMOUS = Caller(ANONYMOUS_OWNER, AuthContext(access_key="", signing_key=b"", scope="", amz_date="",
                                                seed_signature="", payload_mode="signed",
                                                content_sha256=None, presigned=False))
ANONYMOUS_OPS = frozenset({"GetObject", "HeadObject", "ListObjects", "ListObjectsV2", "GetBucketLocation"})
# Query parameters of a presigned URL (SigV4, SigV2): their presence means "signed".
_AUTH_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "Signature", "AWSAccessKeyId")


def is_anonymous(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """Whether a request carries no signature of any kind (header or presigned query)."""
    if "Authorization" in headers:  # a signed request, read case-insensitively from a multidict
        return False
    return not any(k.lower() == "authorization" for k in headers) and not any(p in query for p in _AUTH_PARAMS)


def is_anonymous_caller(caller: Caller) -> bool:
    return caller.owner == ANONYMOUS_OWNER


def check_anonymous_op(caller: Caller, endpoint: Endpoint) -> None:
    """AccessDenied when an anonymous caller attempts anything but an anonymous read;
    InvalidRequest for an anonymous read with ``response-*`` overrides (S3 wants those signed)."""
    if not is_anonymous_caller(caller):
        return
    if endpoint.op not in ANONYMOUS_OPS:
        raise AccessDenied("Anonymous access is allowed only to read what a bucket policy or a "
                           "public-read ACL opens; sign the request with AWS Signature Version 4.")
    if getattr(endpoint, "response_headers", ()):
        raise InvalidRequest("Request specific response headers cannot be used for anonymous GET requests.")


def may_read(bucket: Bucket, version: ObjectVersion, by_version_id: bool) -> bool:
    """Whether everyone may read ``version`` of ``bucket`` (named by id when ``by_version_id``)."""
    if version.public_read:
        return True
    grants = bp.grants_of(bucket.access_policy, bucket.name)
    return not by_version_id and grants.allows(bp.GET_OBJECT, version.key)


def may_list(bucket: Bucket) -> bool:
    """Whether everyone may list ``bucket``'s keys (and learn that a key does not exist)."""
    return bucket.public_read or bp.grants_of(bucket.access_policy, bucket.name).allows(bp.LIST_BUCKET)


def may_locate(bucket: Bucket) -> bool:
    """Whether everyone may ask for ``bucket``'s region."""
    return bp.grants_of(bucket.access_policy, bucket.name).allows(bp.GET_BUCKET_LOCATION)


# The canned ACL that opens reads (the private ones are gateway.unsupported's ACCEPTED_*_ACLS).
PUBLIC_READ = "public-read"


def canned_public_read(value: str | None, bucket: bool = False) -> bool | None:
    """What an ``x-amz-acl`` value sets: True for public-read, False for a private one
    (``private``; for objects also ``bucket-owner-full-control`` and ``bucket-owner-read``),
    None when absent. Raises NotImplementedOp for canned ACLs that open more
    (public-read-write, ...)."""
    if value is None:
        return None
    v = value.strip().lower()
    if v == PUBLIC_READ:
        return True
    if v in (ACCEPTED_BUCKET_ACLS if bucket else ACCEPTED_OBJECT_ACLS):
        return False
    raise NotImplementedOp(f"The canned ACL {value.strip()} is not implemented; only private and public-read are.",
                           Header="x-amz-acl")
