"""Internal request signatures: finite timestamps, bound to the target node and the
``X-Objstore-*`` headers, and not replayable (a bounded set of seen nonces)."""
from __future__ import annotations

import time

import pytest

from objstore import internal_auth as ia

SECRET = "cluster-secret"
PATH = "/blobs/v1/0"
PLACEMENT = {"X-Objstore-Bucket": "b", "X-Objstore-Key": "k", "X-Objstore-Policy": "replica:3"}


def forge(ts: str) -> str:
    """A header value with a chosen timestamp field, MAC'd as the old format did."""
    import hashlib
    import hmac
    mac = hmac.new(SECRET.encode(), f"GET\n{PATH}\n{ts}\n".encode(), hashlib.sha256).hexdigest()
    return f"{ts}:{mac}"


@pytest.mark.parametrize("ts", ["nan", "NaN", "inf", "-inf", "1e999", "+nan", " nan", "1_700_000_000"])
def test_non_finite_or_odd_timestamps_refused(ts: str) -> None:
    assert not ia.verify(SECRET, "GET", PATH, forge(ts))
    nonce = "0123456789abcdef"
    value = ia.sign(SECRET, "GET", PATH, nonce=nonce)
    _, _, mac = value.split(":")
    assert not ia.verify(SECRET, "GET", PATH, f"{ts}:{nonce}:{mac}")


def test_absurd_timestamps_refused() -> None:
    for now in (0.0, 1e12, time.time() + 10 * ia.MAX_SKEW):
        assert not ia.verify(SECRET, "GET", PATH, ia.sign(SECRET, "GET", PATH, now=now))


def test_signature_is_bound_to_the_target_node() -> None:
    h = ia.headers(SECRET, "GET", PATH, target="10.0.0.1:7001")
    assert ia.verify_headers(SECRET, "GET", PATH, h, target="10.0.0.1:7001")
    assert not ia.verify_headers(SECRET, "GET", PATH, h, target="10.0.0.2:7001")
    assert not ia.verify_headers(SECRET, "GET", PATH, h, target="10.0.0.1:7002")
    assert not ia.verify_headers(SECRET, "GET", PATH, h, target="")


def test_placement_headers_are_signed() -> None:
    h = ia.headers(SECRET, "PUT", PATH, stream_length=3, target="n1:1", extra=PLACEMENT)
    assert all(h[k] == v for k, v in PLACEMENT.items())
    assert ia.verify_headers(SECRET, "PUT", PATH, h, target="n1:1")
    for name in PLACEMENT:
        assert not ia.verify_headers(SECRET, "PUT", PATH, {**h, name: "other"}, target="n1:1"), name
    without = {k: v for k, v in h.items() if k != "X-Objstore-Policy"}
    assert not ia.verify_headers(SECRET, "PUT", PATH, without, target="n1:1")
    added = {**h, "X-Objstore-Debug-Stale-Read": "1"}
    assert not ia.verify_headers(SECRET, "PUT", PATH, added, target="n1:1")


def test_replays_refused() -> None:
    guard = ia.ReplayGuard()
    h = ia.headers(SECRET, "GET", PATH, target="n1:1")
    assert ia.verify_headers(SECRET, "GET", PATH, h, target="n1:1", replay=guard)
    assert not ia.verify_headers(SECRET, "GET", PATH, h, target="n1:1", replay=guard)
    fresh = ia.headers(SECRET, "GET", PATH, target="n1:1")
    assert ia.verify_headers(SECRET, "GET", PATH, fresh, target="n1:1", replay=guard)


def test_replay_guard_is_bounded_and_keeps_refusing_old_requests() -> None:
    guard = ia.ReplayGuard(max_nonces=100)
    now = time.time()
    first = ia.headers(SECRET, "GET", PATH, target="n1:1")
    assert ia.verify_headers(SECRET, "GET", PATH, first, target="n1:1", replay=guard)
    for i in range(1000):
        value = ia.sign(SECRET, "GET", PATH, now=now + 0.001 * (i + 1), target="n1:1")
        assert ia.verify(SECRET, "GET", PATH, value, target="n1:1", replay=guard, clock=lambda: now)
        assert len(guard) <= 100
    # The first request's nonce was forgotten, but it is older than the floor: still refused.
    assert not ia.verify_headers(SECRET, "GET", PATH, first, target="n1:1", replay=guard)


def test_failed_macs_do_not_fill_the_guard() -> None:
    guard = ia.ReplayGuard(max_nonces=10)
    for _ in range(100):
        bad = ia.headers("wrong", "GET", PATH, target="n1:1")
        assert not ia.verify_headers(SECRET, "GET", PATH, bad, target="n1:1", replay=guard)
    assert len(guard) == 0


def test_a_request_signed_before_a_server_started_is_refused_by_it() -> None:
    """A restarted server has forgotten the nonces it saw: one captured before it started is
    refused by its start time, not replayable for the rest of the skew window."""
    from objstore.http_common import InternalCalls

    captured = ia.headers(SECRET, "GET", PATH, target="n1:1")
    time.sleep(0.01)
    restarted = InternalCalls(SECRET, metrics=None, op_of=lambda r: "op")  # type: ignore[arg-type]
    assert not ia.verify_headers(SECRET, "GET", PATH, captured, target="n1:1", replay=restarted.replay)
    fresh = ia.headers(SECRET, "GET", PATH, target="n1:1")
    assert ia.verify_headers(SECRET, "GET", PATH, fresh, target="n1:1", replay=restarted.replay)
    assert ia.verify_headers(SECRET, "GET", PATH, captured, target="n1:1", replay=ia.ReplayGuard())  # no floor
