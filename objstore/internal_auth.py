"""Authentication of the internal APIs (storage nodes, metadata service) by the cluster secret.

Every internal request carries ``X-Objstore-Auth: <unix-ts>:<hex hmac-sha256>`` where the
HMAC, keyed by the cluster secret, covers the method, the raw path (with query), the
timestamp and a body tag sent as ``X-Objstore-Body``: ``sha256:<hex>`` for a request body
held in memory (JSON commands), ``stream:<length>`` for a streamed blob (which carries its
own block checksums), or empty for no body. A server accepts a request only if the HMAC
matches, the timestamp is within ``MAX_SKEW`` seconds of its clock, and the body matches
its tag (:func:`body_matches`). A captured request can therefore be replayed only as it
was, to the same target, within the skew window.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Callable, Mapping

HEADER = "X-Objstore-Auth"
BODY_HEADER = "X-Objstore-Body"
MAX_SKEW = 300.0


def _mac(secret: str, method: str, path_qs: str, ts: str, body_tag: str) -> str:
    msg = f"{method.upper()}\n{path_qs}\n{ts}\n{body_tag}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def body_tag(body: bytes | None = None, stream_length: int | None = None) -> str:
    """The tag naming a request body: its sha256, a streamed length, or "" for none."""
    if body is not None:
        return "sha256:" + hashlib.sha256(body).hexdigest()
    if stream_length is not None:
        return f"stream:{stream_length}"
    return ""


def sign(secret: str, method: str, path_qs: str, now: float | None = None, tag: str = "") -> str:
    """Return the header value authenticating ``method path_qs`` with body ``tag`` at ``now``."""
    ts = f"{(time.time() if now is None else now):.3f}"
    return f"{ts}:{_mac(secret, method, path_qs, ts, tag)}"


def headers(secret: str, method: str, path_qs: str, body: bytes | None = None,
            stream_length: int | None = None) -> dict[str, str]:
    """The headers to add to an internal request (pass the body, or a streamed body's length)."""
    tag = body_tag(body, stream_length)
    out = {HEADER: sign(secret, method, path_qs, tag=tag)}
    if tag:
        out[BODY_HEADER] = tag
    return out


def verify(
    secret: str,
    method: str,
    path_qs: str,
    header_value: str | None,
    clock: Callable[[], float] = time.time,
    tag: str = "",
) -> bool:
    """True when ``header_value`` authenticates this request (with body ``tag``) now."""
    if not header_value or ":" not in header_value:
        return False
    ts, _, mac = header_value.partition(":")
    try:
        t = float(ts)
    except ValueError:
        return False
    if abs(clock() - t) > MAX_SKEW:
        return False
    return hmac.compare_digest(_mac(secret, method, path_qs, ts, tag), mac)


def verify_headers(secret: str, method: str, path_qs: str, hdrs: Mapping[str, str]) -> bool:
    """Check the signature over the request line and the claimed body tag (not the body)."""
    return verify(secret, method, path_qs, hdrs.get(HEADER), tag=hdrs.get(BODY_HEADER, ""))


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
