"""The cluster-secret signature on internal requests covers the request line, time and body."""
from __future__ import annotations

import pytest

from objstore import internal_auth as ia

SECRET = "cluster-secret"


def _check(headers: dict[str, str], method: str, path: str, body: bytes | None, length: int | None,
           now: float | None = None) -> bool:
    import time

    clock = (lambda: now) if now is not None else time.time
    ok = ia.verify(SECRET, method, path, headers.get(ia.HEADER), clock=clock, tag=headers.get(ia.BODY_HEADER, ""))
    return ok and ia.body_matches(headers.get(ia.BODY_HEADER, ""), length, body)


def test_json_body_is_bound_to_the_signature():
    body = b'{"type": "DeleteBucket", "args": {"name": "a"}}'
    h = ia.headers(SECRET, "POST", "/v1/command", body=body)
    assert _check(h, "POST", "/v1/command", body, len(body))
    other = b'{"type": "DeleteBucket", "args": {"name": "b"}}'
    assert not _check(h, "POST", "/v1/command", other, len(other))
    # Claiming another body's tag breaks the HMAC.
    forged = {**h, ia.BODY_HEADER: ia.body_tag(other)}
    assert not _check(forged, "POST", "/v1/command", other, len(other))


def test_stream_tag_binds_the_length():
    h = ia.headers(SECRET, "PUT", "/blobs/v1/0", stream_length=100)
    assert _check(h, "PUT", "/blobs/v1/0", None, 100)
    assert not _check(h, "PUT", "/blobs/v1/0", None, 101)


def test_no_tag_allows_no_body():
    h = ia.headers(SECRET, "GET", "/stats")
    assert _check(h, "GET", "/stats", None, None)
    assert not _check(h, "GET", "/stats", None, 5)


def test_wrong_secret_path_method_or_stale_time_refused():
    h = ia.headers(SECRET, "GET", "/blobs/v1/0")
    assert not ia.verify("other", "GET", "/blobs/v1/0", h[ia.HEADER])
    assert not ia.verify(SECRET, "GET", "/blobs/v2/0", h[ia.HEADER])
    assert not ia.verify(SECRET, "DELETE", "/blobs/v1/0", h[ia.HEADER])
    ts = float(h[ia.HEADER].split(":")[0])
    assert not ia.verify(SECRET, "GET", "/blobs/v1/0", h[ia.HEADER], clock=lambda: ts + ia.MAX_SKEW + 1)
    assert not ia.verify(SECRET, "GET", "/blobs/v1/0", "garbage")
    assert not ia.verify(SECRET, "GET", "/blobs/v1/0", None)


def test_every_signature_of_a_process_carries_a_nonce_of_its_own_that_a_server_accepts():
    guard = ia.ReplayGuard()
    values = [ia.sign(SECRET, "GET", "/stats") for _ in range(1000)]
    nonces = [v.split(":")[1] for v in values]
    assert len(set(nonces)) == len(nonces)
    assert all(ia.verify(SECRET, "GET", "/stats", v, replay=guard) for v in values)
    assert not ia.verify(SECRET, "GET", "/stats", values[0], replay=guard)  # a replay is still refused


@pytest.mark.parametrize("secret", ["s", "x" * 64, "y" * 65, "z" * 200, "ä-secret"])
def test_the_mac_is_hmac_sha256_of_the_canonical_request_whatever_the_secret_length(secret: str) -> None:
    import hmac

    mac = ia._mac(secret, "put", "/p?q=1", "1.000", "ab" * 8, "Host:1", "stream:3", "x-objstore-key:k")
    msg = "PUT\n/p?q=1\n1.000\n" + "ab" * 8 + "\nhost:1\nstream:3\nx-objstore-key:k"
    assert mac == hmac.digest(secret.encode(), msg.encode(), "sha256").hex()
