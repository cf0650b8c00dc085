"""Request headers that ask for features objstore does not have: refused with 501.

(Also :func:`check_expected_owner`, which answers ``x-amz-expected-bucket-owner``.)

A client that sends, say, ``x-amz-server-side-encryption-customer-key`` or
``x-amz-acl: public-read`` expects something objstore cannot do (encrypt with its key,
make the object public). Accepting the request and ignoring the header would be a wrong
success, so :func:`refuse_unsupported_headers` raises ``NotImplementedOp`` before any
handler runs, and nothing is changed.

Pure: it looks only at the routed operation and the header names and values.
Invariants: a header is refused only where S3 gives it a meaning (ACL and encryption
headers on writes, SSE-C on reads and writes, copy-source SSE-C on copies); values that
are equivalent to what objstore does anyway are accepted (``x-amz-acl: private``,
``x-amz-storage-class: STANDARD``).
"""
from __future__ import annotations

from typing import Mapping

from objstore.errors import AccessDenied, NotImplementedOp

# Refused on every request.
_ANY_OP = ("x-amz-request-payer", "x-amz-mfa", "x-amz-bypass-governance-retention")

_SSE_C = (
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
)
_COPY_SOURCE_SSE_C = tuple(f"x-amz-copy-source-server-side-encryption-customer-{p}" for p in ("algorithm", "key", "key-md5"))
_GRANTS = ("x-amz-grant-read", "x-amz-grant-write", "x-amz-grant-read-acp", "x-amz-grant-write-acp",
           "x-amz-grant-full-control")

# Headers that describe how to store a new object (PutObject, CopyObject, multipart writes).
_OBJECT_WRITE = (
    *_SSE_C,
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-website-redirect-location",
    *_GRANTS,
)
_BUCKET_CREATE = (*_GRANTS,)
# Headers refused for one operation only.
_PER_OP = {"CopyObject": ("x-amz-copy-source-range",)}

# Canned ACLs equivalent to what objstore does: only the bucket owner has access.
ACCEPTED_OBJECT_ACLS = ("private", "bucket-owner-full-control")
ACCEPTED_BUCKET_ACLS = ("private",)
ACCEPTED_STORAGE_CLASSES = ("STANDARD",)
# Bucket object ownership settings equivalent to objstore's model (ACLs disabled).
ACCEPTED_OBJECT_OWNERSHIP = ("BucketOwnerEnforced",)


def _refuse(name: str, op: str) -> NotImplementedOp:
    return NotImplementedOp(f"The {name} header is not implemented for {op}.", Header=name)


def refuse_unsupported_headers(op: str, method: str, is_object: bool, headers: Mapping[str, str]) -> None:
    """Raise NotImplementedOp if ``headers`` ask operation ``op`` for an unsupported feature.

    ``method`` and ``is_object`` describe the request (an object write is a PUT or POST on
    a key); ``headers`` may be any mapping, names in any case.
    """
    h = {k.lower(): v for k, v in headers.items()}
    for name in (*_ANY_OP, *_PER_OP.get(op, ())):
        if name in h:
            raise _refuse(name, op)
    if is_object and method in ("PUT", "POST"):
        for name in _OBJECT_WRITE:
            if name in h:
                raise _refuse(name, op)
        acl = h.get("x-amz-acl")
        if acl is not None and acl.strip().lower() not in ACCEPTED_OBJECT_ACLS:
            raise NotImplementedOp(f"Only the canned ACLs {', '.join(ACCEPTED_OBJECT_ACLS)} are supported; "
                                   f"got x-amz-acl: {acl}.", Header="x-amz-acl")
        sc = h.get("x-amz-storage-class")
        if sc is not None and sc.strip().upper() not in ACCEPTED_STORAGE_CLASSES:
            raise NotImplementedOp(f"Only the STANDARD storage class is supported; got {sc}.",
                                   Header="x-amz-storage-class")
        if op == "CopyObject":
            for name in _COPY_SOURCE_SSE_C:
                if name in h:
                    raise _refuse(name, op)
    elif is_object and method in ("GET", "HEAD"):
        for name in _SSE_C:
            if name in h:
                raise _refuse(name, op)
    if op == "CreateBucket":
        for name in _BUCKET_CREATE:
            if name in h:
                raise _refuse(name, op)
        acl = h.get("x-amz-acl")
        if acl is not None and acl.strip().lower() not in ACCEPTED_BUCKET_ACLS:
            raise NotImplementedOp(f"Only the private canned ACL is supported; got x-amz-acl: {acl}.",
                                   Header="x-amz-acl")
        if h.get("x-amz-bucket-object-lock-enabled", "").strip().lower() == "true":
            raise _refuse("x-amz-bucket-object-lock-enabled", op)
        ownership = h.get("x-amz-object-ownership")
        if ownership is not None and ownership.strip() not in ACCEPTED_OBJECT_OWNERSHIP:
            raise NotImplementedOp(f"Only the BucketOwnerEnforced object ownership is supported; got {ownership}.",
                                   Header="x-amz-object-ownership")


def check_expected_owner(headers: Mapping[str, str], owner: str) -> None:
    """Raise AccessDenied when ``x-amz-expected-bucket-owner`` (or, for copies,
    ``x-amz-source-expected-bucket-owner``) names anyone but the caller.

    Every bucket a request may touch belongs to the caller (others are AccessDenied
    anyway), so the expected owner of any bucket it names must be the caller's owner id.
    """
    h = {k.lower(): v for k, v in headers.items()}
    for name in ("x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner"):
        value = h.get(name)
        if value is not None and value.strip() != owner:
            raise AccessDenied(f"The bucket owner is not {value.strip()}.", Header=name)
