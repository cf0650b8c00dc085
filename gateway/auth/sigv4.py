"""AWS Signature Version 4 verification for S3 requests (pure, no IO).

Two entry points:

* :func:`verify` checks a request end to end (header form ``Authorization:
  AWS4-HMAC-SHA256 ...`` or presigned query form ``X-Amz-Algorithm=...``) and
  returns an :class:`AuthContext` that the data path uses to check the body
  (:func:`verify_payload_sha256`, or ``streaming.AwsChunkedDecoder``).
* :func:`parse_request` + :func:`check_signature` split that in two, so a caller
  that fetches the secret asynchronously can do so in between.

The canonicalisation steps (:func:`canonical_uri`, :func:`canonical_query`,
:func:`canonical_headers`, :func:`canonical_request`, :func:`string_to_sign`,
:func:`signing_key`, :func:`sign`) are public so they can be tested against
AWS's published vectors, both with S3's rules (``s3=True``: the path is not
normalised and each segment is encoded once) and the generic-service rules
(``s3=False``: dot segments and repeated slashes removed, path encoded as sent).

Invariants:
* Nothing here reads a clock: ``now`` is always passed in.
* Signatures are compared in constant time; a request is accepted only if one
  of the canonical forms it can be read as carries the presented signature.
  Beyond the strict AWS form, the path and query as sent (not re-encoded) are
  tried, so clients that sign their own, non-standard encoding still verify.
* The query is read as the router reads it (yarl: ``+`` is a space, ``&`` the only
  separator), so a signature never covers other parameters than the ones served.
* Every ``x-amz-*`` / ``x-objstore-*`` header present is among the SignedHeaders
  (``x-amz-content-sha256`` excepted, its value being bound otherwise), or AccessDenied.
* Every failure raises an :class:`objstore.errors.ObjstoreError` subclass.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote_to_bytes

from objstore.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidAccessKeyId,
    InvalidArgument,
    InvalidRequest,
    NotImplementedOp,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
)
from objstore.percent import is_unreserved

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_PRESIGNED_EXPIRES = 604800  # one week, in seconds
DEFAULT_MAX_SKEW = timedelta(minutes=15)

#: x-amz-content-sha256 value -> AuthContext.payload_mode (a hex digest maps to "signed").
PAYLOAD_MODES: dict[str, str] = {
    UNSIGNED_PAYLOAD: "unsigned",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD": "streaming-signed",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER": "streaming-signed-trailer",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER": "streaming-unsigned-trailer",
}
_UNSUPPORTED_PAYLOADS = ("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
                         "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER")
#: Header name prefixes that must all be among the SignedHeaders when present.
SIGNED_PREFIXES = ("x-amz-", "x-objstore-")
UNSIGNED_EXEMPT = frozenset({"x-amz-content-sha256"})
_HEX = frozenset("0123456789abcdef")
_SAFE = "-_.~"


@dataclass(frozen=True)
class AuthContext:
    """What a verified request proved, and what its body must still satisfy."""

    access_key: str
    signing_key: bytes = field(repr=False)
    scope: str  # "<yyyymmdd>/<region>/<service>/aws4_request"
    amz_date: str  # "yyyymmddThhmmssZ", as it entered the string to sign
    seed_signature: str  # the request's signature: chunk signatures chain from it
    payload_mode: str  # "signed" | "unsigned" | "streaming-signed" | ...-trailer
    content_sha256: str | None  # the hex digest the body must have, when signed
    presigned: bool

    @property
    def region(self) -> str:
        return self.scope.split("/")[1]


@dataclass(frozen=True)
class ParsedRequest:
    """A request's SigV4 fields, parsed and checked for everything but the signature."""

    access_key: str
    date: str  # credential scope date, yyyymmdd
    region: str
    service: str
    amz_date: str
    signed_headers: tuple[str, ...]
    signature: str
    payload_hash: str  # the last line of the canonical request
    presigned: bool
    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, list[str]]

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


# --- canonicalisation ---------------------------------------------------------------------


def _encode_segment_s3(segment: str) -> str:
    if is_unreserved(segment):  # nothing to decode or encode (most segments)
        return segment
    return quote(unquote_to_bytes(segment), safe=_SAFE)


def _remove_dot_segments(path: str) -> str:
    """Normalise a path the way non-S3 services sign it: no '.', '..' or empty segments."""
    out: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    normalised = "/" + "/".join(out)
    if path.endswith("/") and normalised != "/":
        normalised += "/"
    return normalised


def canonical_uri(raw_path: str, *, s3: bool = True) -> str:
    """The CanonicalURI line for a path as it appeared on the request line.

    S3: no normalisation; each segment is percent-decoded then encoded once with
    the unreserved set (so ``%2F`` inside a segment stays ``%2F``).
    Generic services: dot segments and empty segments removed, then the path as
    sent is encoded again (AWS's "double encoding").
    """
    if not raw_path:
        return "/"
    if s3:
        return "/".join(_encode_segment_s3(seg) for seg in raw_path.split("/"))
    return quote(_remove_dot_segments(raw_path), safe="/" + _SAFE)


def _split_query(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def canonical_query(raw_query: str, *, exclude: Iterable[str] = (), plus_as_space: bool = False) -> str:
    """The CanonicalQueryString: each name and value decoded then URI-encoded, sorted.

    ``exclude`` names parameters (compared after encoding) to leave out, e.g.
    ``X-Amz-Signature`` for presigned URLs. ``plus_as_space`` reads ``+`` as a
    space (form encoding) instead of a literal plus.
    """
    excluded = set(exclude)
    pairs = []
    for name, value in _split_query(raw_query):
        if plus_as_space:
            name, value = name.replace("+", " "), value.replace("+", " ")
        enc_name = quote(unquote_to_bytes(name), safe=_SAFE)
        if enc_name in excluded:
            continue
        pairs.append((enc_name, quote(unquote_to_bytes(value), safe=_SAFE)))
    pairs.sort()
    return "&".join(f"{n}={v}" for n, v in pairs)


def _raw_sorted_query(raw_query: str, exclude: Iterable[str]) -> str:
    excluded = set(exclude)
    pairs = sorted(p for p in _split_query(raw_query) if p[0] not in excluded)
    return "&".join(f"{n}={v}" for n, v in pairs)


def normalise_headers(headers: Mapping[str, str]) -> dict[str, list[str]]:
    """Lower-cased header names -> every value sent, in order (multidicts keep repeats)."""
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        name = name.lower()
        values = out.get(name)
        if values is None:
            out[name] = [value]
        else:
            values.append(value)
    return out


def canonical_headers(headers: Mapping[str, list[str]], signed_headers: Sequence[str]) -> str:
    """The CanonicalHeaders block: ``name:trimmed,values\\n`` for each signed header.

    ``headers`` maps lower-case names to value lists (see :func:`normalise_headers`).
    A signed ``expect`` header that a proxy removed is read as ``100-continue``.
    """
    lines = []
    for name in signed_headers:
        values = headers.get(name)
        if values is None:
            values = ["100-continue"] if name == "expect" else [""]
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "".join(lines)


def canonical_request(method: str, uri: str, query: str, headers_block: str,
                      signed_headers: Sequence[str], payload_hash: str) -> str:
    """Join the six parts of a canonical request (parts already canonical)."""
    return f"{method}\n{uri}\n{query}\n{headers_block}\n{';'.join(signed_headers)}\n{payload_hash}"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@lru_cache(maxsize=4096)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """HMAC chain AWS4+secret -> date -> region -> service -> aws4_request (cached)."""
    key = hmac.digest(("AWS4" + secret).encode("utf-8"), date.encode("ascii"), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode("utf-8"), "sha256")
    return key


def sign(key: bytes, text: str) -> str:
    """Hex HMAC-SHA256 of ``text`` under ``key``."""
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


# --- parsing ------------------------------------------------------------------------------


def _malformed(presigned: bool, message: str) -> Exception:
    if presigned:
        return InvalidArgument(message)
    return AuthorizationHeaderMalformed(message)


def _parse_credential(credential: str, presigned: bool, service: str) -> tuple[str, str, str, str]:
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        raise _malformed(presigned, f"The credential '{credential}' is malformed; expecting "
                                    "'<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request'.")
    access_key, date, region, svc, terminal = parts
    if terminal != "aws4_request":
        raise _malformed(presigned, f"The credential is malformed; incorrect terminal '{terminal}'. "
                                    "This endpoint uses 'aws4_request'.")
    if svc != service:
        raise _malformed(presigned, f"The credential is malformed; incorrect service '{svc}'. "
                                    f"This endpoint belongs to '{service}'.")
    if len(date) != 8 or not date.isdigit():
        raise _malformed(presigned, f"The credential is malformed; invalid date '{date}'.")
    return access_key, date, region, svc


def _parse_authorization(value: str) -> tuple[str, str, str]:
    """``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` -> its three fields."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        if scheme == "AWS":
            raise AccessDenied("AWS Signature Version 2 is not supported; sign requests with "
                               "AWS Signature Version 4 (AWS4-HMAC-SHA256).")
        if scheme.startswith("AWS4-ECDSA"):
            raise NotImplementedOp("AWS Signature Version 4A is not supported.")
        raise AuthorizationHeaderMalformed(f"Unsupported authorization type '{scheme}'.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            raise AuthorizationHeaderMalformed(f"The authorization header is malformed; "
                                               f"unexpected component '{item.strip()}'.")
        fields[key.strip()] = val.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
    if missing:
        raise AuthorizationHeaderMalformed(
            f"The authorization header is malformed; missing {', '.join(missing)}.")
    return fields["Credential"], fields["SignedHeaders"], fields["Signature"]


@lru_cache(maxsize=256)
def _amz_time(value: str) -> datetime:
    """``value`` read by ``AMZ_DATE_FORMAT``, in UTC (cached: requests of the same second
    carry the same value, and ``strptime`` is a good part of a request's parsing)."""
    return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=timezone.utc)


@lru_cache(maxsize=256)
def _amz_text(when: datetime) -> str:
    """``when`` (in UTC) written by ``AMZ_DATE_FORMAT`` (cached, as :func:`_amz_time`: requests
    of the same second write the same text, and ``strftime`` costs more than the lookup)."""
    return when.strftime(AMZ_DATE_FORMAT)


MAX_CACHED_SIGNED_HEADERS = 512  # longer SignedHeaders values are split each time, never cached


@lru_cache(maxsize=256)
def _signed_names_cached(signed: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in signed.split(";") if h.strip())


def signed_header_names(signed: str) -> tuple[str, ...]:
    """The SignedHeaders value as lower-case names, in the order given (empty items dropped).
    A client signs the same few header sets again and again, so short values are cached."""
    if len(signed) <= MAX_CACHED_SIGNED_HEADERS:
        return _signed_names_cached(signed)
    return tuple(h.strip().lower() for h in signed.split(";") if h.strip())


def _parse_amz_date(value: str, presigned: bool) -> datetime:
    try:
        return _amz_time(value)
    except ValueError:
        if presigned:
            raise InvalidArgument(f"X-Amz-Date must be in the ISO8601 Long Format "
                                  f"\"yyyyMMdd'T'HHmmss'Z'\"; got '{value}'.") from None
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") from None


def _query_params(raw_query: str) -> dict[str, str]:
    """First value of each query parameter, percent-decoded, ``+`` read as a space (as the
    router reads the query)."""
    params: dict[str, str] = {}
    for name, value in _split_query(raw_query):
        key = unquote_to_bytes(name.replace("+", " ")).decode("utf-8", "replace")
        params.setdefault(key, unquote_to_bytes(value.replace("+", " ")).decode("utf-8", "replace"))
    return params


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now


def _payload_hash_from_header(value: str | None) -> str:
    if value is None:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    if value in PAYLOAD_MODES:
        return value
    if value in _UNSUPPORTED_PAYLOADS:
        raise NotImplementedOp("AWS Signature Version 4A streaming payloads are not supported.")
    if len(value) == 64 and set(value.lower()) <= _HEX:
        return value  # as sent: it is a line of the canonical request
    raise InvalidArgument("x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value, "
                          "or a valid sha256 value.", ArgumentName="x-amz-content-sha256",
                          ArgumentValue=value)


def parse_request(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                  now: datetime, region: str | None = None,
                  max_skew: timedelta = DEFAULT_MAX_SKEW, service: str = "s3") -> ParsedRequest:
    """Parse and check a request's SigV4 fields, clock and scope; not the signature.

    Raises AccessDenied (no or unsupported authentication, expired presigned URL),
    AuthorizationHeaderMalformed / InvalidArgument (malformed fields, wrong region),
    RequestTimeTooSkewed, InvalidRequest (missing x-amz-content-sha256).
    """
    if "?" in raw_path:
        raw_path, _, embedded_query = raw_path.partition("?")
        raw_query = raw_query or embedded_query
    hdrs = normalise_headers(headers)
    params = _query_params(raw_query) if raw_query else {}
    auth_values = hdrs.get("authorization")
    presigned = "X-Amz-Algorithm" in params or "X-Amz-Signature" in params
    now = _utc(now)

    if auth_values and presigned:
        raise InvalidArgument("Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                              "parameter or the Authorization header should be specified.")
    if auth_values:
        credential, signed, signature = _parse_authorization(auth_values[0])
        access_key, date, cred_region, svc = _parse_credential(credential, False, service)
        if "x-amz-date" in hdrs:
            when = _parse_amz_date(hdrs["x-amz-date"][0], False)
        elif "date" in hdrs:
            try:
                when = _utc(parsedate_to_datetime(hdrs["date"][0]))
            except (TypeError, ValueError, IndexError):
                raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") from None
        else:
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
        if abs(now - when) > max_skew:
            raise RequestTimeTooSkewed(RequestTime=when.strftime(AMZ_DATE_FORMAT),
                                       ServerTime=now.strftime(AMZ_DATE_FORMAT),
                                       MaxAllowedSkewMilliseconds=int(max_skew.total_seconds() * 1000))
        payload_hash = _payload_hash_from_header(
            hdrs["x-amz-content-sha256"][0] if "x-amz-content-sha256" in hdrs else None)
    elif presigned:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise InvalidArgument(f"X-Amz-Algorithm only supports \"{ALGORITHM}\".")
        missing = [k for k in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                               "X-Amz-SignedHeaders", "X-Amz-Signature") if not params.get(k)]
        if missing:
            raise InvalidArgument("Query-string authentication version 4 requires the "
                                  f"X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                                  f"X-Amz-SignedHeaders, and X-Amz-Expires parameters; missing "
                                  f"{', '.join(missing)}.")
        credential, signed, signature = (params["X-Amz-Credential"], params["X-Amz-SignedHeaders"],
                                         params["X-Amz-Signature"])
        access_key, date, cred_region, svc = _parse_credential(credential, True, service)
        when = _parse_amz_date(params["X-Amz-Date"], True)
        try:
            expires = int(params["X-Amz-Expires"])
        except ValueError:
            raise AuthorizationQueryParametersError("X-Amz-Expires should be a number") from None
        if expires < 0:
            raise AuthorizationQueryParametersError("X-Amz-Expires must be non-negative")
        if expires > MAX_PRESIGNED_EXPIRES:
            raise AuthorizationQueryParametersError(
                "X-Amz-Expires must be less than a week (in seconds) that is 604800")
        if now < when - max_skew:
            raise AccessDenied("Request is not valid yet")
        if now > when + timedelta(seconds=expires):
            raise AccessDenied("Request has expired", Expires=(when + timedelta(seconds=expires))
                               .strftime("%Y-%m-%dT%H:%M:%SZ"),
                               ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        payload_hash = params.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    elif "Signature" in params and "AWSAccessKeyId" in params:
        raise AccessDenied("AWS Signature Version 2 presigned URLs are not supported; "
                           "use AWS Signature Version 4.")
    else:
        raise AccessDenied("Anonymous access is not supported; sign the request with "
                           "AWS Signature Version 4.")

    # Cached for UTC times only: equal instants in other zones write other fields.
    amz_date = _amz_text(when) if when.tzinfo is timezone.utc else when.strftime(AMZ_DATE_FORMAT)
    if date != amz_date[:8]:
        raise _malformed(presigned, f"Invalid credential date '{date}'. This date is not the same "
                                    f"as the request date '{amz_date[:8]}'.")
    if region is not None and cred_region != region:
        raise _malformed(presigned, f"The authorization header is malformed; the region "
                                    f"'{cred_region}' is wrong; expecting '{region}'")
    signed_headers = signed_header_names(signed)
    if "host" not in signed_headers:
        raise _malformed(presigned, "The host header must be signed (SignedHeaders lacks 'host').")
    check_all_signed(hdrs, signed_headers)
    return ParsedRequest(access_key=access_key, date=date, region=cred_region, service=svc,
                         amz_date=amz_date, signed_headers=signed_headers,
                         signature=signature.strip().lower(), payload_hash=payload_hash,
                         presigned=presigned, method=method.upper(), raw_path=raw_path,
                         raw_query=raw_query, headers=hdrs)


def unsigned_headers(headers: Mapping[str, list[str]], signed_headers: Iterable[str]) -> list[str]:
    """The request's ``x-amz-*`` / ``x-objstore-*`` headers that the signature does not cover.

    ``x-amz-content-sha256`` is exempt (as in MinIO): its value is bound to the signature
    separately, as the last line of the canonical request (header form) or by the signed
    ``X-Amz-Content-Sha256`` query parameter (presigned form; the header is then ignored).
    """
    signed = set(signed_headers)
    return sorted(name for name in headers
                  if name.startswith(SIGNED_PREFIXES) and name not in signed
                  and name not in UNSIGNED_EXEMPT)


def check_all_signed(headers: Mapping[str, list[str]], signed_headers: Iterable[str]) -> None:
    """Raise AccessDenied unless every ``x-amz-*`` / ``x-objstore-*`` header is signed.

    Without this a presigned URL, or a header-signed request, could carry extra headers
    (``x-amz-copy-source``, ``x-amz-meta-*``, ``x-amz-tagging``) that change what the
    request does without invalidating its signature.
    """
    signed: frozenset[str] | None = None
    for name in headers:  # usually every such header is signed: find out before sorting anything
        if name.startswith(SIGNED_PREFIXES) and name not in UNSIGNED_EXEMPT:
            if signed is None:
                signed = frozenset(signed_headers)
            if name not in signed:
                break
    else:
        return
    missing = unsigned_headers(headers, signed_headers)
    if missing:
        raise AccessDenied("There were headers present in the request which were not signed",
                           HeadersNotSigned=", ".join(missing))


def canonical_request_candidates(parsed: ParsedRequest) -> list[str]:
    """The canonical requests this request can be read as, strictest (AWS's) first."""
    exclude = ("X-Amz-Signature",) if parsed.presigned else ()
    uris = [canonical_uri(parsed.raw_path, s3=parsed.service == "s3")]
    if parsed.raw_path and parsed.raw_path not in uris:
        uris.append(parsed.raw_path)
    # "+" is read as a space, as the router reads the query (yarl): a signature is only
    # accepted for the parameters the request will be served with.
    if parsed.raw_query:
        queries = [canonical_query(parsed.raw_query, exclude=exclude, plus_as_space=True)]
        raw = _raw_sorted_query(parsed.raw_query, exclude)
        if raw not in queries:
            queries.append(raw)
    else:
        queries = [""]  # what both readings of an empty query give
    block = canonical_headers(parsed.headers, parsed.signed_headers)
    return [canonical_request(parsed.method, u, q, block, parsed.signed_headers, parsed.payload_hash)
            for u in uris for q in queries]


def check_signature(parsed: ParsedRequest, secret: str) -> AuthContext:
    """Verify ``parsed``'s signature with ``secret``; raise SignatureDoesNotMatch if wrong."""
    key = signing_key(secret, parsed.date, parsed.region, parsed.service)
    scope = parsed.scope
    presented = parsed.signature.encode("ascii", "replace")
    for creq in canonical_request_candidates(parsed):
        expected = sign(key, string_to_sign(parsed.amz_date, scope, creq))
        if hmac.compare_digest(expected.encode("ascii"), presented):
            break
    else:
        raise SignatureDoesNotMatch(AWSAccessKeyId=parsed.access_key)
    payload_hash = parsed.payload_hash
    mode = PAYLOAD_MODES.get(payload_hash, "signed")
    return AuthContext(access_key=parsed.access_key, signing_key=key, scope=scope,
                       amz_date=parsed.amz_date, seed_signature=parsed.signature,
                       payload_mode=mode,
                       content_sha256=payload_hash.lower() if mode == "signed" else None,
                       presigned=parsed.presigned)


def verify(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
           lookup_secret: Callable[[str], str | None], now: datetime,
           region: str | None = None, max_skew: timedelta = DEFAULT_MAX_SKEW) -> AuthContext:
    """Authenticate an S3 request signed with SigV4 (header or presigned query form).

    ``raw_path`` and ``raw_query`` are exactly as on the request line (still
    percent-encoded; ``raw_query`` without the ``?``). ``headers`` may be a dict
    or a multidict; names are matched case-insensitively. ``region=None``
    accepts any region in the credential scope.

    Raises InvalidAccessKeyId for an unknown key, SignatureDoesNotMatch, and
    whatever :func:`parse_request` raises.
    """
    parsed = parse_request(method, raw_path, raw_query, headers, now, region, max_skew)
    secret = lookup_secret(parsed.access_key)
    if secret is None:
        raise InvalidAccessKeyId(AWSAccessKeyId=parsed.access_key)
    return check_signature(parsed, secret)


def verify_payload_sha256(ctx: AuthContext, digest_hex: str) -> None:
    """For a ``signed`` payload, check the body's sha256; no-op for other modes."""
    if ctx.payload_mode == "signed" and not hmac.compare_digest(
            digest_hex.lower().encode("ascii"), (ctx.content_sha256 or "").encode("ascii")):
        raise XAmzContentSHA256Mismatch(ClientComputedContentSHA256=ctx.content_sha256,
                                        S3ComputedContentSHA256=digest_hex)
