"""One error hierarchy for the whole of objstore, mapped to S3 error codes.

Every part raises subclasses of :class:`ObjstoreError`. Each class carries the
S3 error ``code`` and the HTTP ``status`` a client expects; the gateway renders
any of them as S3 error XML, and the internal HTTP APIs (storage nodes, the
metadata service) carry them across the wire as JSON ``{"code", "message"}``
so that :func:`error_from_code` rebuilds the same class on the other side.

Anything that is not an ``ObjstoreError`` is an internal fault: the gateway
answers 500 ``InternalError`` with a request id and logs it.
"""
from __future__ import annotations

import json
from typing import Any


class ObjstoreError(Exception):
    """Base class: an S3 error code, an HTTP status and a human message."""

    code: str = "InternalError"
    status: int = 500
    default_message: str = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        # Extra fields rendered as elements of the S3 error XML (BucketName, Key, ...).
        self.extra: dict[str, Any] = extra
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "extra": self.extra}


# --- 4xx: client errors -------------------------------------------------------------------
class AccessDenied(ObjstoreError):
    code, status, default_message = "AccessDenied", 403, "Access Denied"


class InvalidAccessKeyId(ObjstoreError):
    code, status = "InvalidAccessKeyId", 403
    default_message = "The AWS Access Key Id you provided does not exist in our records."


class SignatureDoesNotMatch(ObjstoreError):
    code, status = "SignatureDoesNotMatch", 403
    default_message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )


class RequestTimeTooSkewed(ObjstoreError):
    code, status = "RequestTimeTooSkewed", 403
    default_message = "The difference between the request time and the current time is too large."


class AuthorizationHeaderMalformed(ObjstoreError):
    code, status = "AuthorizationHeaderMalformed", 400
    default_message = "The authorization header is malformed."


class MissingSecurityHeader(ObjstoreError):
    code, status = "MissingSecurityHeader", 400
    default_message = "Your request is missing a required header."


class NoSuchBucket(ObjstoreError):
    code, status, default_message = "NoSuchBucket", 404, "The specified bucket does not exist"


class NoSuchKey(ObjstoreError):
    code, status, default_message = "NoSuchKey", 404, "The specified key does not exist."


class NoSuchUpload(ObjstoreError):
    code, status = "NoSuchUpload", 404
    default_message = "The specified multipart upload does not exist."


class NoSuchVersion(ObjstoreError):
    code, status = "NoSuchVersion", 404
    default_message = "The specified version does not exist."


class NoSuchTagSet(ObjstoreError):
    code, status, default_message = "NoSuchTagSet", 404, "The TagSet does not exist"


class NoSuchBucketPolicy(ObjstoreError):
    code, status, default_message = "NoSuchBucketPolicy", 404, "The bucket policy does not exist"


class InvalidTag(ObjstoreError):
    code, status, default_message = "InvalidTag", 400, "The tag provided was not a valid tag."


class IllegalVersioningConfiguration(ObjstoreError):
    code, status = "IllegalVersioningConfigurationException", 400
    default_message = "The versioning configuration specified in the request is invalid."


class BucketAlreadyOwnedByYou(ObjstoreError):
    code, status = "BucketAlreadyOwnedByYou", 409
    default_message = "Your previous request to create the named bucket succeeded and you already own it."


class BucketAlreadyExists(ObjstoreError):
    code, status = "BucketAlreadyExists", 409
    default_message = "The requested bucket name is not available."


class BucketNotEmpty(ObjstoreError):
    code, status = "BucketNotEmpty", 409
    default_message = "The bucket you tried to delete is not empty"


class InvalidBucketName(ObjstoreError):
    code, status, default_message = "InvalidBucketName", 400, "The specified bucket is not valid."


class InvalidArgument(ObjstoreError):
    code, status, default_message = "InvalidArgument", 400, "Invalid Argument"


class AuthorizationQueryParametersError(InvalidArgument):
    """A malformed presigned-URL parameter (AWS's code for it; an InvalidArgument kind)."""

    code, status = "AuthorizationQueryParametersError", 400


class InvalidRequest(ObjstoreError):
    code, status, default_message = "InvalidRequest", 400, "Invalid Request"


class InvalidRange(ObjstoreError):
    code, status, default_message = "InvalidRange", 416, "The requested range is not satisfiable"


class MalformedXML(ObjstoreError):
    code, status = "MalformedXML", 400
    default_message = "The XML you provided was not well-formed or did not validate against our published schema."


class MalformedPolicy(ObjstoreError):
    code, status, default_message = "MalformedPolicy", 400, "Policies must be valid JSON."


class BadDigest(ObjstoreError):
    code, status = "BadDigest", 400
    default_message = "The Content-MD5 you specified did not match what we received."


class InvalidDigest(ObjstoreError):
    code, status, default_message = "InvalidDigest", 400, "The Content-MD5 you specified is not valid."


class EntityTooLarge(ObjstoreError):
    code, status = "EntityTooLarge", 400
    default_message = "Your proposed upload exceeds the maximum allowed object size."


class EntityTooSmall(ObjstoreError):
    code, status = "EntityTooSmall", 400
    default_message = "Your proposed upload is smaller than the minimum allowed object size."


class IncompleteBody(ObjstoreError):
    code, status = "IncompleteBody", 400
    default_message = "You did not provide the number of bytes specified by the Content-Length HTTP header."


class MissingContentLength(ObjstoreError):
    code, status = "MissingContentLength", 411
    default_message = "You must provide the Content-Length HTTP header."


class KeyTooLongError(ObjstoreError):
    code, status = "KeyTooLongError", 400
    default_message = "Your key is too long."


class MetadataTooLarge(ObjstoreError):
    code, status = "MetadataTooLarge", 400
    default_message = "Your metadata headers exceed the maximum allowed metadata size."


class RequestHeaderSectionTooLarge(ObjstoreError):
    code, status = "RequestHeaderSectionTooLarge", 400
    default_message = "Your request header section exceeds the maximum allowed size."


class InvalidPart(ObjstoreError):
    code, status = "InvalidPart", 400
    default_message = "One or more of the specified parts could not be found."


class InvalidPartNumber(ObjstoreError):
    code, status, default_message = "InvalidPartNumber", 416, "The requested partnumber is not satisfiable"


class InvalidPartOrder(ObjstoreError):
    code, status = "InvalidPartOrder", 400
    default_message = "The list of parts was not in ascending order."


class PreconditionFailed(ObjstoreError):
    code, status = "PreconditionFailed", 412
    default_message = "At least one of the pre-conditions you specified did not hold"


class MethodNotAllowed(ObjstoreError):
    code, status = "MethodNotAllowed", 405
    default_message = "The specified method is not allowed against this resource."


class XAmzContentSHA256Mismatch(ObjstoreError):
    code, status = "XAmzContentSHA256Mismatch", 400
    default_message = "The provided 'x-amz-content-sha256' header does not match what was computed."


class InvalidChecksum(ObjstoreError):
    """A flexible checksum (x-amz-checksum-*) did not match the body."""

    code, status = "BadDigest", 400
    default_message = "The checksum you specified did not match the calculated checksum."


# --- 5xx: server errors -------------------------------------------------------------------
class InternalError(ObjstoreError):
    code, status = "InternalError", 500


class NotImplementedOp(ObjstoreError):
    code, status = "NotImplemented", 501
    default_message = "A header or operation you provided implies functionality that is not implemented."


class ServiceUnavailable(ObjstoreError):
    code, status = "ServiceUnavailable", 503
    default_message = "The service is unavailable. Please retry."


class RequestTimeout(ObjstoreError):
    code, status = "RequestTimeout", 400
    default_message = "Your socket connection to the server was not read from or written to within the timeout period."


class SlowDown(ObjstoreError):
    code, status, default_message = "SlowDown", 503, "Please reduce your request rate."


class InsufficientStorage(ObjstoreError):
    """A storage node has no room for a blob without eating into its reserve (or its disk is full)."""

    code, status = "InsufficientStorage", 507
    default_message = "The storage node does not have enough free space for this blob."


class InsufficientReplicas(ServiceUnavailable):
    """Fewer than the write quorum of storage nodes acknowledged a blob."""

    default_message = "Not enough storage nodes acknowledged the write. Please retry."


# --- internal (never sent to S3 clients as such) ---------------------------------------------
class CorruptBlob(ObjstoreError):
    """A blob failed checksum verification on a storage node."""

    code, status, default_message = "CorruptBlob", 500, "Stored data failed checksum verification."


class NotLeader(ObjstoreError):
    """A metadata node that is not the leader received a write; ``extra['leader']`` may name it."""

    code, status, default_message = "NotLeader", 503, "This metadata node is not the leader."


class StaleRingEpoch(ObjstoreError):
    """A storage node refused a commit manifest placed by a ring older than the one its
    manifests were handed over to (:mod:`gateway.ring_epochs`): the writer must adopt the
    newer cluster map and place the manifest again."""

    code, status = "StaleRingEpoch", 409
    default_message = "The manifest was placed by a ring this node's manifests were already handed over from."


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_from_code(code: str, message: str | None = None, extra: dict[str, Any] | None = None) -> ObjstoreError:
    """Rebuild the error class for an S3/internal code carried over an internal API."""
    for cls in [ObjstoreError, *_all_subclasses(ObjstoreError)]:
        # Prefer the most general class for a code shared by several (e.g. BadDigest).
        if cls.code == code:
            return cls(message, **(extra or {}))
    err = InternalError(message)
    return err


def raise_for_error_body(status: int, body: bytes) -> None:
    """Raise the ObjstoreError an internal service returned, if ``status`` is an error."""
    if status < 400:
        return
    try:
        d = json.loads(body)
        raise error_from_code(d.get("code", "InternalError"), d.get("message"), d.get("extra"))
    except (ValueError, AttributeError):
        raise error_from_code("InternalError", f"HTTP {status}: {body[:200]!r}") from None


class FormatTooNew(ObjstoreError):
    """Data on disk or a message on the wire in a format version newer than this objstore
    reads (a newer version wrote it): refused rather than taken for damage."""

    code, status = "UnsupportedFormat", 500
    default_message = "The data is in a format newer than this version of objstore reads."
