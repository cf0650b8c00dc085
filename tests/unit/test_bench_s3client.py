"""The benchmark client sends a large in-memory body as views of it, in order, whole."""
from __future__ import annotations

import os

from ops.bench.s3client import SEND_SLICE, _sendable


async def test_large_body_is_sent_as_views_of_itself_in_order() -> None:
    body = os.urandom(2 * SEND_SLICE + 12345)
    pieces = [p async for p in _sendable(body)]
    assert all(isinstance(p, memoryview) and p.obj is body for p in pieces)
    assert [len(p) for p in pieces] == [SEND_SLICE, SEND_SLICE, 12345]
    assert b"".join(pieces) == body


def test_small_body_is_handed_over_as_it_is() -> None:
    body = b"x" * SEND_SLICE
    assert _sendable(body) is body
