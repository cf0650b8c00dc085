"""AWS Signature Version 2 presigned URLs (query-string authentication), pure, no IO.

boto3 and the AWS CLI presign S3 URLs with Signature Version 2 unless the client is
configured with ``signature_version="s3v4"``: ``?AWSAccessKeyId=..&Expires=..&Signature=..``.
Only this query form is accepted; V2 ``Authorization: AWS ...`` headers stay refused
(``gateway.auth.sigv4``).

The string to sign is ``METHOD\\nContent-MD5\\nContent-Type\\nExpires\\n`` then the
canonical ``x-amz-*`` headers (``name:value\\n``, sorted) then the canonical resource
(``/bucket/key`` as sent, plus the sub-resources S3 signs, sorted, values decoded). As
presigners move Content-Type, Content-MD5 and ``x-amz-*`` headers into the query, each is
read from the request header when sent, else from the query parameter of that name.

Invariants: nothing here reads a clock (``now`` is passed in); signatures are compared in
constant time; every failure raises an ObjstoreError subclass.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote, unquote_to_bytes

from gateway.auth.sigv4 import AuthContext
from objstore.errors import AccessDenied, SignatureDoesNotMatch

# Query parameters that are part of the signed resource (as botocore's HmacV1Auth signs).
SIGNED_SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy",
    "requestPayment", "torrent", "versioning", "versionId", "versions", "website", "uploads", "uploadId",
    "response-content-type", "response-content-language", "response-expires", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "delete", "lifecycle", "tagging", "restore",
    "storageClass", "notification", "replication", "analytics", "metrics", "inventory", "select",
    "select-type", "object-lock",
})
_AUTH_PARAMS = ("AWSAccessKeyId", "Signature", "Expires")
MAX_LIFETIME = 604800  # seconds, as SigV4's X-Amz-Expires cap


@dataclass(frozen=True)
class PresignedV2:
    access_key: str
    signature: str
    expires: int
    strings_to_sign: tuple[str, ...]  # the readings of the request, strictest first


def _raw_pairs(raw_query: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for part in raw_query.split("&"):
        if part:
            name, sep, value = part.partition("=")
            out.append((name, value if sep else None))
    return out


def is_presigned_v2(raw_query: str) -> bool:
    """True when the query carries V2 presigned-URL parameters (and no V4 ones)."""
    names = {unquote(n) for n, _ in _raw_pairs(raw_query)}
    return "AWSAccessKeyId" in names and "Signature" in names and "X-Amz-Algorithm" not in names


def canonical_resource(raw_path: str, raw_query: str, bucket_from_host: str | None = None) -> str:
    """The CanonicalizedResource: the path as sent (under ``/bucket`` for virtual hosts) and
    the signed sub-resources, sorted by name, values decoded."""
    path = raw_path or "/"
    if bucket_from_host:
        path = "/" + bucket_from_host + path
    subs = [(n, v) for n, v in _raw_pairs(raw_query) if n in SIGNED_SUBRESOURCES]
    if not subs:
        return path
    subs.sort(key=lambda p: p[0])
    return path + "?" + "&".join(n if v is None else f"{n}={unquote(v)}" for n, v in subs)


def string_to_sign(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                   bucket_from_host: str | None = None) -> str:
    """The V2 string to sign for a presigned request (Expires from the query)."""
    params: dict[str, str] = {}
    for name, value in _raw_pairs(raw_query):
        params.setdefault(unquote(name), unquote_to_bytes(value or "").decode("utf-8", "replace"))
    hdrs: dict[str, list[str]] = {}
    for name, value in headers.items():
        hdrs.setdefault(name.lower(), []).append(value)

    def standard(name: str) -> str:
        if name in hdrs:
            return hdrs[name][0].strip()
        return params.get(name, "").strip()

    amz: dict[str, str] = {n: ",".join(v.strip() for v in vs) for n, vs in hdrs.items() if n.startswith("x-amz-")}
    for name, value in params.items():
        lname = name.lower()
        if lname.startswith("x-amz-") and lname not in amz:
            amz[lname] = value.strip()
    lines = [method.upper(), standard("content-md5"), standard("content-type"), params.get("Expires", "")]
    text = "\n".join(lines) + "\n"
    text += "".join(f"{n}:{amz[n]}\n" for n in sorted(amz))
    return text + canonical_resource(raw_path, raw_query, bucket_from_host)


def parse_presigned(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], now: datetime,
                    bucket_from_host: str | None = None) -> PresignedV2:
    """Parse and check a V2 presigned request's parameters and expiry; not the signature.

    Raises AccessDenied for a malformed Expires, one over a week ahead or passed, and for
    an ``x-objstore-*`` header (V2 signs only ``x-amz-*`` ones).
    """
    params = {unquote(n): unquote_to_bytes(v or "").decode("utf-8", "replace") for n, v in _raw_pairs(raw_query)}
    missing = [p for p in _AUTH_PARAMS if not params.get(p)]
    if missing:
        raise AccessDenied(f"Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
                           f"parameters; missing {', '.join(missing)}.")
    now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now
    expires = _expires(params["Expires"], now)
    unsigned = sorted(n.lower() for n in headers if n.lower().startswith("x-objstore-"))
    if unsigned:
        # x-amz-* headers enter the string to sign; our own headers do not, so refuse them.
        raise AccessDenied("There were headers present in the request which were not signed",
                           HeadersNotSigned=", ".join(unsigned))
    readings = [string_to_sign(method, raw_path, raw_query, headers, bucket_from_host)]
    if not bucket_from_host and raw_path.count("/") == 1 and len(raw_path) > 1:
        # A bucket addressed path-style as /bucket is signed as /bucket/ by botocore.
        readings.append(string_to_sign(method, raw_path + "/", raw_query, headers))
    return PresignedV2(params["AWSAccessKeyId"], params["Signature"], expires, tuple(readings))


def _expires(text: str, now: datetime) -> int:
    """The ``Expires`` parameter as epoch seconds, if the URL is still valid at ``now``.

    Raises AccessDenied for a value that is not a non-negative integer, one more than
    :data:`MAX_LIFETIME` seconds ahead of ``now`` (as V4's one-week cap), or one passed.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise AccessDenied(f"Invalid date (should be seconds since epoch): {text[:32]}")
    expires = int(text)
    if expires > now.timestamp() + MAX_LIFETIME:
        raise AccessDenied("Expires must be less than a week (604800 seconds) in the future")
    if now.timestamp() > expires:
        raise AccessDenied("Request has expired",
                           Expires=datetime.fromtimestamp(expires, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return expires


def sign(secret: str, text: str) -> str:
    """base64 HMAC-SHA1 of ``text`` under ``secret``."""
    return base64.b64encode(hmac.digest(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha1)).decode()


def check_signature(parsed: PresignedV2, secret: str) -> AuthContext:
    """Verify the signature; raise SignatureDoesNotMatch. The payload is unsigned."""
    presented = parsed.signature.encode("ascii", "replace")
    if not any(hmac.compare_digest(sign(secret, text).encode("ascii"), presented) for text in parsed.strings_to_sign):
        raise SignatureDoesNotMatch(AWSAccessKeyId=parsed.access_key, StringToSign=parsed.strings_to_sign[0])
    return AuthContext(access_key=parsed.access_key, signing_key=b"", scope="", amz_date="",
                       seed_signature=parsed.signature, payload_mode="unsigned", content_sha256=None,
                       presigned=True)
