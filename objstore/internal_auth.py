"""Authentication of the internal APIs (storage nodes, metadata service) by the cluster secret.

Every internal request carries ``X-Objstore-Auth: <unix-ts>:<nonce>:<hex hmac-sha256>``
where the HMAC, keyed by the cluster secret, covers the method, the raw path (with query),
the timestamp, a nonce unique to the request (a random per-process prefix and a counter),
the target node (the ``host:port`` the request is sent to,
as its Host header names it), a body tag sent as ``X-Objstore-Body`` (``sha256:<hex>``
for a request body held in memory, ``stream:<length>`` for a streamed blob, which carries
its own block checksums, or empty for no body), and every other ``X-Objstore-*`` header
of the request (those that say where a blob belongs: bucket, key, policy).

A server accepts a request only if the HMAC matches, the timestamp is a finite number
within ``MAX_SKEW`` seconds of its clock, the Host header names it, the nonce has not been
seen (:class:`ReplayGuard`), and the body matches its tag (:func:`body_matches`). A
captured request therefore cannot be replayed, sent to another node, or given other
placement headers. All processes of a cluster run the same version of this format.
"""
from __future__ import annotations

import functools
import hashlib
import heapq
import hmac
import itertools
import math
import os
import re
import secrets
import time
from typing import Callable, Mapping

HEADER = "X-Objstore-Auth"
BODY_HEADER = "X-Objstore-Body"
SIGNED_PREFIX = "x-objstore-"
MAX_SKEW = 300.0
MAX_NONCES = 50_000
_UNBLOCKED = frozenset({HEADER.lower(), BODY_HEADER.lower()})
_TS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
_NONCE = re.compile(r"[0-9a-f]{16,64}")


def _norm_host(host: str) -> str:
    host = host.strip().lower()
    return host[:-3] if host.endswith(":80") else host


def _headers_block(hdrs: Mapping[str, str] | None) -> str:
    """Canonical ``name:value`` lines of the ``X-Objstore-*`` headers (but the auth header
    and the body tag, which the MAC covers on its own)."""
    if not hdrs:
        return ""
    lines = []
    for k, v in hdrs.items():
        name = k.lower()
        if name.startswith(SIGNED_PREFIX) and name not in _UNBLOCKED:
            lines.append(f"{name}:{v.strip()}")
    lines.sort()
    return "\n".join(lines)


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> tuple["hashlib._Hash", "hashlib._Hash"]:
    """HMAC-SHA256's inner and outer hashes with the key already absorbed (RFC 2104), so a
    MAC costs two hash copies instead of a key schedule and digest lookup per call."""
    key = secret.encode()
    if len(key) > 64:  # the block size
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _mac(secret: str, method: str, path_qs: str, ts: str, nonce: str, target: str, body_tag: str,
         block: str) -> str:
    msg = f"{method.upper()}\n{path_qs}\n{ts}\n{nonce}\n{_norm_host(target)}\n{body_tag}\n{block}"
    inner, outer = _keyed(secret)
    h = inner.copy()
    h.update(msg.encode("utf-8", "surrogateescape"))
    o = outer.copy()
    o.update(h.digest())
    return o.hexdigest()


class _Nonces:
    """Nonces unique for the life of a process: a random 64-bit prefix, drawn anew in a
    forked child, and a counter, so a call costs no read of the system's random source.
    Uniqueness is all a nonce needs (:class:`ReplayGuard`); the MAC covers it."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):016x}"


_nonces = _Nonces()


def body_tag(body: bytes | None = None, stream_length: int | None = None) -> str:
    """The tag naming a request body: its sha256, a streamed length, or "" for none."""
    if body is not None:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    if stream_length is not None:
        return f"stream:{stream_length}"
    return ""


def sign(secret: str, method: str, path_qs: str, now: float | None = None, tag: str = "", target: str = "",
         signed: Mapping[str, str] | None = None, nonce: str | None = None) -> str:
    """The ``X-Objstore-Auth`` value for ``method path_qs`` sent to ``target`` (host:port) with
    body ``tag`` and the ``X-Objstore-*`` headers in ``signed``, at ``now``."""
    ts = f"{(time.time() if now is None else now):.3f}"
    nonce = nonce or _nonces.next()
    return f"{ts}:{nonce}:{_mac(secret, method, path_qs, ts, nonce, target, tag, _headers_block(signed))}"


def headers(secret: str, method: str, path_qs: str, body: bytes | None = None,
            stream_length: int | None = None, target: str = "",
            extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of an internal request to ``target`` (the ``host:port`` in its URL).

    Pass the body, or a streamed body's length. ``extra`` headers are included in the
    result, and those named ``X-Objstore-*`` are signed.
    """
    tag = body_tag(body, stream_length)
    out = dict(extra or {})
    if tag:
        out[BODY_HEADER] = tag
    out[HEADER] = sign(secret, method, path_qs, tag=tag, target=target, signed=out)
    return out


class ReplayGuard:
    """The nonces of requests accepted in the last ``MAX_SKEW`` seconds, at most ``max_nonces``.

    When full, the oldest nonce is forgotten and requests signed at or before its time are
    refused from then on (the replay window shrinks under load; memory stays bounded).

    ``since``: requests signed at or before this time are refused. A server passes the time
    it started: the nonces it saw before a restart are gone with its memory, so a request
    captured then could otherwise be replayed to it for up to ``MAX_SKEW`` seconds. (A call
    signed before the restart was sent to the old process and is signed anew when retried.)
    """

    def __init__(self, max_nonces: int = MAX_NONCES, since: float = -math.inf) -> None:
        self.max_nonces = max_nonces
        self._seen: set[str] = set()
        self._order: list[tuple[float, str]] = []  # heap of (ts, nonce)
        self._floor = since

    def __len__(self) -> int:
        return len(self._seen)

    def fresh(self, ts: float, nonce: str) -> bool:
        """Whether (ts, nonce) may be accepted: signed after the floor, nonce not seen."""
        return ts > self._floor and nonce not in self._seen

    def record(self, ts: float, nonce: str, now: float) -> None:
        while self._order and (self._order[0][0] < now - MAX_SKEW or len(self._order) >= self.max_nonces):
            old_ts, old = heapq.heappop(self._order)
            self._seen.discard(old)
            self._floor = max(self._floor, old_ts)
        self._seen.add(nonce)
        heapq.heappush(self._order, (ts, nonce))


def verify(
    secret: str,
    method: str,
    path_qs: str,
    header_value: str | None,
    clock: Callable[[], float] = time.time,
    tag: str = "",
    target: str = "",
    signed: Mapping[str, str] | None = None,
    replay: ReplayGuard | None = None,
) -> bool:
    """True when ``header_value`` authenticates this request (sent to ``target``, with body
    ``tag`` and ``X-Objstore-*`` headers ``signed``) now; records its nonce in ``replay``."""
    if not header_value or header_value.count(":") != 2:
        return False
    ts, nonce, mac = header_value.split(":")
    if not _TS.fullmatch(ts) or not _NONCE.fullmatch(nonce):
        return False
    t, now = float(ts), clock()
    if not math.isfinite(t) or abs(now - t) > MAX_SKEW:
        return False
    if replay is not None and not replay.fresh(t, nonce):
        return False
    if not hmac.compare_digest(_mac(secret, method, path_qs, ts, nonce, target, tag, _headers_block(signed)), mac):
        return False
    if replay is not None:
        replay.record(t, nonce, now)
    return True


def verify_headers(secret: str, method: str, path_qs: str, hdrs: Mapping[str, str], target: str = "",
                   replay: ReplayGuard | None = None) -> bool:
    """Check the signature over the request line, target, claimed body tag and ``X-Objstore-*``
    headers (not the body itself: see :func:`body_matches`)."""
    return verify(secret, method, path_qs, hdrs.get(HEADER), tag=hdrs.get(BODY_HEADER, ""), target=target,
                  signed=hdrs, replay=replay)


def body_matches(tag: str, content_length: int | None, body: bytes | None) -> bool:
    """Whether a request body agrees with its signed tag.

    ``body`` is the whole body for ``sha256:`` tags (None when not read); a ``stream:``
    tag must name the Content-Length; an empty tag allows no body at all.
    """
    if tag.startswith("sha256:"):
        return body is not None and hmac.compare_digest(tag, body_tag(body))
    if tag.startswith("stream:"):
        return content_length is not None and tag == f"stream:{content_length}"
    return not content_length
