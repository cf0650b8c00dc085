"""Receive buffers that are not zeroed first (objstore.buffers)."""
from __future__ import annotations

import pytest

from objstore.buffers import uninitialized


@pytest.mark.parametrize("n", [0, 1, 4096, 1024 * 1024 + 7])
def test_a_buffer_of_the_size_asked_takes_writes(n):
    buf = uninitialized(n)
    assert isinstance(buf, bytearray) and len(buf) == n
    buf[:] = b"\x5a" * n
    assert buf == b"\x5a" * n
    view = memoryview(buf)
    assert len(view) == n and not view.readonly
