"""Authentication of the internal APIs (storage nodes, metadata service) by the cluster secret.

Every internal request carries ``X-Objstore-Auth: <unix-ts>:<hex hmac-sha256>`` where the
HMAC, keyed by the cluster secret, covers the method, the raw path (with query) and the
timestamp. A server accepts a request only if the HMAC matches and the timestamp is within
``MAX_SKEW`` seconds of its clock. Bodies are not signed (they stream, and carry their own
checksums); the path names the operation and its target, so a captured signature cannot
be replayed against another object and expires with the skew window.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Callable, Mapping

HEADER = "X-Objstore-Auth"
MAX_SKEW = 300.0


def sign(secret: str, method: str, path_qs: str, now: float | None = None) -> str:
    """Return the header value authenticating ``method path_qs`` at time ``now``."""
    ts = f"{(time.time() if now is None else now):.3f}"
    mac = hmac.new(secret.encode(), f"{method.upper()}\n{path_qs}\n{ts}".encode(), hashlib.sha256)
    return f"{ts}:{mac.hexdigest()}"


def headers(secret: str, method: str, path_qs: str) -> dict[str, str]:
    """The headers to add to an internal request."""
    return {HEADER: sign(secret, method, path_qs)}


def verify(
    secret: str,
    method: str,
    path_qs: str,
    header_value: str | None,
    clock: Callable[[], float] = time.time,
) -> bool:
    """True when ``header_value`` authenticates this request under ``secret`` now."""
    if not header_value or ":" not in header_value:
        return False
    ts, _, mac = header_value.partition(":")
    try:
        t = float(ts)
    except ValueError:
        return False
    if abs(clock() - t) > MAX_SKEW:
        return False
    want = hmac.new(secret.encode(), f"{method.upper()}\n{path_qs}\n{ts}".encode(), hashlib.sha256)
    return hmac.compare_digest(want.hexdigest(), mac)


def verify_headers(secret: str, method: str, path_qs: str, hdrs: Mapping[str, str]) -> bool:
    return verify(secret, method, path_qs, hdrs.get(HEADER))
