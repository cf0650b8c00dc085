"""Signing S3 requests with AWS Signature Version 4: the client side of :mod:`gateway.auth.sigv4`.

Built from the verifier's own canonicalisation steps (``canonical_uri``,
``canonical_query``, ``canonical_headers``, ``canonical_request``, ``string_to_sign``,
``signing_key``, ``sign``), so what a client signs here is by construction what the
gateway checks. Used by the benchmark's load generator (``ops/bench``), which signs every
request itself: the derived key is cached per day (``signing_key``'s cache), so a
signature costs a few microseconds.

Invariants: :func:`sign_request` is a pure function of its inputs (``now`` is passed in);
it signs exactly ``host``, ``x-amz-content-sha256`` and ``x-amz-date`` plus any
``x-amz-*`` headers the caller gives, with the payload declared ``UNSIGNED-PAYLOAD``
unless the caller gives a body hash; the path is URI-encoded once and never normalised,
and the query is sorted by encoded name then value (S3's rules, botocore's result).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from urllib.parse import quote

from gateway.auth.sigv4 import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    SIGNED_PREFIXES,
    UNSIGNED_PAYLOAD,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    sign,
    signing_key,
    string_to_sign,
)


def encode_path(path: str) -> str:
    """An unencoded path (``/bucket/a key``) as sent on the request line: every byte but
    unreserved characters and '/' percent-encoded."""
    return quote(path, safe="/-_.~")


def encode_query(query: Mapping[str, str] | None) -> str:
    """``name=value`` pairs, both encoded, sorted, joined by '&' ('' for no query)."""
    if not query:
        return ""
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def sign_request(access_key: str, secret_key: str, region: str, method: str, host: str, path: str,
                 query: Mapping[str, str] | None, headers: Mapping[str, str] | None, payload_hash: str,
                 now: datetime, service: str = "s3") -> dict[str, str]:
    """The headers to send: the caller's ``headers`` plus Host, date, payload hash and Authorization.

    ``host`` is the Host header value (``name`` or ``name:port``); ``path`` is the
    unencoded object path (``/bucket/key``). Only ``x-amz-*`` and ``x-objstore-*`` caller headers
    are signed (the gateway refuses them unsigned).
    """
    amz_date = now.astimezone(timezone.utc).strftime(AMZ_DATE_FORMAT)
    day = amz_date[:8]
    signed: dict[str, list[str]] = {"host": [host], "x-amz-content-sha256": [payload_hash], "x-amz-date": [amz_date]}
    out = dict(headers or {})
    for name, value in out.items():
        if name.lower().startswith(SIGNED_PREFIXES):
            signed[name.lower()] = [str(value)]
    names = sorted(signed)
    creq = canonical_request(method, canonical_uri(encode_path(path)), canonical_query(encode_query(query)),
                             canonical_headers(signed, names), names, payload_hash)
    scope = f"{day}/{region}/{service}/aws4_request"
    signature = sign(signing_key(secret_key, day, region, service), string_to_sign(amz_date, scope, creq))
    out["Host"] = host
    out["x-amz-content-sha256"] = payload_hash
    out["x-amz-date"] = amz_date
    out["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return out


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class SigV4Signer:
    """Signs S3 requests for one key pair and region; ``clock`` gives the time when ``now`` is not passed."""

    def __init__(self, access_key: str, secret_key: str, region: str = "us-east-1", service: str = "s3",
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.access_key = access_key
        self._secret = secret_key
        self.region = region
        self.service = service
        self._clock = clock

    def sign(self, method: str, host: str, path: str, query: Mapping[str, str] | None = None,
             headers: Mapping[str, str] | None = None, payload_hash: str = UNSIGNED_PAYLOAD,
             now: datetime | None = None) -> dict[str, str]:
        """See :func:`sign_request`."""
        return sign_request(self.access_key, self._secret, self.region, method, host, path, query, headers,
                            payload_hash, now or self._clock(), self.service)
