"""Request headers that ask for features objstore does not have: refused with 501.

(Also :func:`check_expected_owner`, which answers ``x-amz-expected-bucket-owner``.)

A client that sends, say, ``x-amz-server-side-encryption-customer-key`` or
``x-amz-acl: public-read-write`` expects something objstore cannot do (encrypt with its
key, let anyone write). Accepting the request and ignoring the header would be a wrong
success, so :func:`refuse_unsupported_headers` raises ``NotImplementedOp`` before any
handler runs, and nothing is changed.

Pure: it looks only at the routed operation and the header names and values.
Invariants: a header is refused only where ignoring it would be a wrong success: ACL
grants that would open access, canned ACLs that open more than objstore honours,
encryption (SSE, SSE-KMS, SSE-C on reads and writes, copy-source SSE-C on copies), object
lock and retention on a write, a storage class or website redirect that would not be kept.
Headers that ask for nothing objstore could violate are accepted and the operation is done:
``x-amz-request-payer`` (no bucket is requester-pays), ``x-amz-bypass-governance-retention``
(no object is under retention), ``x-amz-mfa`` (MFA delete can never be enabled), and values
equivalent to what objstore does anyway (``x-amz-acl: private``, ``x-amz-storage-class:
STANDARD``); so is ``x-amz-acl: public-read`` where objstore honours it
(:data:`PUBLIC_READ_OPS`).
"""
from __future__ import annotations

from typing import Callable, Mapping

from objstore.errors import AccessDenied, NotImplementedOp

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
_BUCKET_GRANTS = (*_GRANTS,)  # CreateBucket and PutBucketAcl
# Headers refused for one operation only.
_PER_OP = {"CopyObject": ("x-amz-copy-source-range",)}

# Canned ACLs equivalent to what objstore does: only the bucket owner has access (an
# object's owner is always its bucket's owner, so bucket-owner-read grants nothing more).
ACCEPTED_OBJECT_ACLS = ("private", "bucket-owner-full-control", "bucket-owner-read")
ACCEPTED_BUCKET_ACLS = ("private",)
ACCEPTED_STORAGE_CLASSES = ("STANDARD",)
# Operations that honour the canned ACL public-read (gateway.anonymous says what it opens).
PUBLIC_READ_OPS = ("PutObject", "CopyObject", "PutObjectAcl", "CreateBucket", "PutBucketAcl")
# Bucket object ownership settings equivalent to objstore's model (ACLs disabled).
ACCEPTED_OBJECT_OWNERSHIP = ("BucketOwnerEnforced",)


def _refuse_present(h: Mapping[str, str], names: tuple[str, ...], op: str) -> None:
    """NotImplementedOp for the first of ``names`` present in ``h`` (lower-case names)."""
    for name in names:
        if name in h:
            raise NotImplementedOp(f"The {name} header is not implemented for {op}.", Header=name)


def _refuse_other_values(h: Mapping[str, str], name: str, accepted: tuple[str, ...], message: str,
                         normalize: Callable[[str], str] = str.lower) -> None:
    """NotImplementedOp when header ``name`` holds a value (normalized) not in ``accepted``;
    ``message`` is formatted with the value as sent."""
    value = h.get(name)
    if value is not None and normalize(value.strip()) not in accepted:
        raise NotImplementedOp(message.format(value=value), Header=name)


def refuse_unsupported_headers(op: str, method: str, is_object: bool, headers: Mapping[str, str]) -> None:
    """Raise NotImplementedOp if ``headers`` ask operation ``op`` for an unsupported feature.

    ``method`` and ``is_object`` describe the request (an object write is a PUT or POST on
    a key); ``headers`` may be any mapping, names in any case.
    """
    h = {k.lower(): v for k, v in headers.items()}
    _refuse_present(h, _PER_OP.get(op, ()), op)
    if is_object and method in ("PUT", "POST"):
        _refuse_present(h, _OBJECT_WRITE, op)
        accepted = (*ACCEPTED_OBJECT_ACLS, "public-read") if op in PUBLIC_READ_OPS else ACCEPTED_OBJECT_ACLS
        _refuse_other_values(h, "x-amz-acl", accepted,
                             f"Only the canned ACLs {', '.join(accepted)} are supported; "
                             "got x-amz-acl: {value}.")
        _refuse_other_values(h, "x-amz-storage-class", ACCEPTED_STORAGE_CLASSES,
                             "Only the STANDARD storage class is supported; got {value}.", str.upper)
        if op == "CopyObject":
            _refuse_present(h, _COPY_SOURCE_SSE_C, op)
    elif is_object and method in ("GET", "HEAD"):
        _refuse_present(h, _SSE_C, op)
    if op in ("CreateBucket", "PutBucketAcl"):
        _refuse_present(h, _BUCKET_GRANTS, op)
        _refuse_other_values(h, "x-amz-acl", (*ACCEPTED_BUCKET_ACLS, "public-read"),
                             "Only the private and public-read canned ACLs are supported; got x-amz-acl: {value}.")
    if op == "CreateBucket":
        if h.get("x-amz-bucket-object-lock-enabled", "").strip().lower() == "true":
            _refuse_present(h, ("x-amz-bucket-object-lock-enabled",), op)
        _refuse_other_values(h, "x-amz-object-ownership", ACCEPTED_OBJECT_OWNERSHIP,
                             "Only the BucketOwnerEnforced object ownership is supported; got {value}.",
                             lambda v: v)


def check_expected_owner(headers: Mapping[str, str], owner: str) -> None:
    """Raise AccessDenied when ``x-amz-expected-bucket-owner`` (or, for copies,
    ``x-amz-source-expected-bucket-owner``) names anyone but the caller.

    Every bucket a request may touch belongs to the caller (others are AccessDenied
    anyway), so the expected owner of any bucket it names must be the caller's owner id.
    """
    h = {}  # the last value of each, as a dict of every header lower-cased would hold
    for k, v in headers.items():
        name = k.lower()
        if name in _EXPECTED_OWNER_HEADERS:
            h[name] = v
    for name in _EXPECTED_OWNER_HEADERS:
        value = h.get(name)
        if value is not None and value.strip() != owner:
            raise AccessDenied(f"The bucket owner is not {value.strip()}.", Header=name)


_EXPECTED_OWNER_HEADERS = ("x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner")
