"""How a PUT body is cut into chunks for the write path (``BodyStream._coalesced``)."""
from __future__ import annotations

import random
from typing import AsyncIterator

import pytest

from gateway.datapath.body import COALESCE, BodyStream


def _stream(pieces: list[bytes]) -> BodyStream:
    stream = BodyStream.__new__(BodyStream)  # only the cutting is exercised: no request needed

    async def payload() -> AsyncIterator[bytes]:
        for p in pieces:
            yield p

    stream._payload = payload  # type: ignore[method-assign]
    return stream


@pytest.mark.parametrize("seed", range(6))
async def test_chunks_are_exactly_coalesce_bytes_but_the_last_and_keep_every_byte(seed):
    rng = random.Random(seed)
    sizes = [rng.choice([1, 1000, 65536, 131072, 262144 + 7, COALESCE, COALESCE + 1, 2 * COALESCE + 3])
             for _ in range(rng.randint(1, 60))]
    pieces = [rng.randbytes(n) for n in sizes]
    got = [c async for c in _stream(pieces)._coalesced()]
    assert b"".join(got) == b"".join(pieces)
    assert all(len(c) == COALESCE for c in got[:-1]) and 0 < len(got[-1]) <= COALESCE
    assert all(isinstance(c, bytes) for c in got)


async def test_a_piece_of_exactly_one_chunk_is_passed_on_as_it_is():
    piece = bytes(COALESCE)
    got = [c async for c in _stream([piece])._coalesced()]
    assert got == [piece] and got[0] is piece


def test_only_bodies_from_the_threshold_go_to_the_pool_and_none_without_workers(monkeypatch):
    from gateway.datapath import offload
    monkeypatch.setattr(offload, "WORKERS", 2)
    assert not offload.offloaded(offload.OFFLOAD_SIZE - 1) and offload.offloaded(offload.OFFLOAD_SIZE)
    monkeypatch.setattr(offload, "WORKERS", 0)
    assert not offload.offloaded(64 * 1024 * 1024)
    monkeypatch.setenv("OBJSTORE_BODY_WORKERS", "0")
    assert offload._workers() == 0
    monkeypatch.setenv("OBJSTORE_BODY_WORKERS", "x")
    assert offload._workers() == 2
