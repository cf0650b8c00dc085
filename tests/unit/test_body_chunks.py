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


class _Protocol:
    """What aiohttp's StreamReader asks of its protocol (flow control only)."""

    _reading_paused = False

    def pause_reading(self, *args: object, **kwargs: object) -> None:
        self._reading_paused = True

    def resume_reading(self, *args: object, **kwargs: object) -> None:
        self._reading_paused = False


class _Request:
    def __init__(self, content) -> None:  # noqa: ANN001 - an aiohttp StreamReader
        self.content = content
        self.app: dict = {}  # no gateway context: the default slow-body limits


async def test_pieces_buffered_together_are_read_as_they_came_not_joined_into_a_copy():
    import asyncio

    from aiohttp.streams import StreamReader

    reader = StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())
    pieces = [bytes([i]) * (256 * 1024) for i in range(1, 5)]
    for p in pieces:  # all four arrived before the gateway reads: readany would join them
        reader.feed_data(p)
    reader.feed_eof()
    stream = BodyStream.__new__(BodyStream)
    stream.request = _Request(reader)  # type: ignore[assignment]
    got = [piece async for piece in stream._raw()]
    assert len(got) == len(pieces) and all(g is p for g, p in zip(got, pieces))


class _Drained:
    """A body already read to its end: every further ``readchunk`` says (b"", True), as
    aiohttp's EmptyStreamReader does after its first call."""

    def __init__(self) -> None:
        self.calls = 0

    async def readchunk(self) -> tuple[bytes, bool]:
        self.calls += 1
        if self.calls > 100:
            raise AssertionError("the body's end was not taken for its end")
        return b"", True

    def at_eof(self) -> bool:
        return True


async def test_a_body_at_its_end_ends_even_when_the_reader_reports_a_chunk_end():
    stream = BodyStream.__new__(BodyStream)
    stream.request = _Request(_Drained())  # type: ignore[assignment]
    assert [piece async for piece in stream._raw()] == []


class _HeadersRequest(_Request):
    def __init__(self, content, headers: dict[str, str]) -> None:  # noqa: ANN001 - an aiohttp StreamReader
        super().__init__(content)
        from multidict import CIMultiDict
        self.headers = CIMultiDict(headers)


def _auth(mode: str = "unsigned", sha256: str | None = None):  # noqa: ANN202
    from gateway.auth.sigv4 import AuthContext
    return AuthContext("AK", b"k", "20260101/us-east-1/s3/aws4_request", "20260101T000000Z", "sig", mode, sha256,
                       False)


def _arrived(pieces: list[bytes], *, eof: bool = True):  # noqa: ANN202
    import asyncio

    from aiohttp.streams import StreamReader

    reader = StreamReader(_Protocol(), 2**16, loop=asyncio.get_running_loop())
    for p in pieces:
        reader.feed_data(p)
    if eof:
        reader.feed_eof()
    return reader


async def test_a_small_body_that_has_all_arrived_is_taken_in_one_piece_with_its_checks():
    import base64
    import hashlib

    body = bytes(range(256)) * 16
    pieces = [body[:1000], body[1000:]]  # two socket reads, both buffered before the PUT reads
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    stream = BodyStream(_HeadersRequest(_arrived(pieces), {"Content-MD5": md5}), _auth(), len(body))
    stream._raw = None  # type: ignore[assignment]  # taken whole: the piece-by-piece reader is not used
    got = [c async for c in stream.chunks()]
    assert got == [body] and stream.etag == hashlib.md5(body).hexdigest()


async def test_a_small_body_taken_whole_still_fails_its_digest_and_its_length():
    import base64
    import hashlib

    from objstore.errors import BadDigest, IncompleteBody, XAmzContentSHA256Mismatch

    body = b"x" * 4096
    wrong = base64.b64encode(hashlib.md5(b"y").digest()).decode()
    stream = BodyStream(_HeadersRequest(_arrived([body]), {"Content-MD5": wrong}), _auth(), len(body))
    with pytest.raises(BadDigest):
        [c async for c in stream.chunks()]
    stream = BodyStream(_HeadersRequest(_arrived([body]), {}), _auth(), len(body) + 1)
    with pytest.raises(IncompleteBody):
        [c async for c in stream.chunks()]
    sha = hashlib.sha256(b"other").hexdigest()
    stream = BodyStream(_HeadersRequest(_arrived([body]), {}), _auth("signed", sha), len(body))
    with pytest.raises(XAmzContentSHA256Mismatch):
        [c async for c in stream.chunks()]


async def test_a_body_still_arriving_is_read_piece_by_piece():
    body = b"z" * 4096
    reader = _arrived([body[:100]], eof=False)
    stream = BodyStream(_HeadersRequest(reader, {}), _auth(), len(body))
    assert stream._arrived_whole() is None
    reader.feed_data(body[100:])
    reader.feed_eof()
    assert b"".join([c async for c in stream.chunks()]) == body


async def test_a_small_body_taken_whole_gets_the_flexible_checksum_and_overlong_checks():
    import base64
    import zlib

    from objstore.errors import BadDigest, IncompleteBody, InvalidRequest

    body = b"q" * 2048
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    stream = BodyStream(_HeadersRequest(_arrived([body]), {"x-amz-checksum-crc32": crc}), _auth(), len(body))
    assert [c async for c in stream.chunks()] == [body] and stream.checksum_values == {"crc32": crc}
    wrong = base64.b64encode((zlib.crc32(body) ^ 1).to_bytes(4, "big")).decode()
    stream = BodyStream(_HeadersRequest(_arrived([body]), {"x-amz-checksum-crc32": wrong}), _auth(), len(body))
    with pytest.raises(BadDigest):
        [c async for c in stream.chunks()]
    stream = BodyStream(_HeadersRequest(_arrived([body]), {"x-amz-trailer": "x-amz-checksum-crc32"}), _auth(),
                        len(body))
    with pytest.raises(InvalidRequest):  # declared as a trailer, which a body without aws-chunked cannot carry
        [c async for c in stream.chunks()]
    stream = BodyStream(_HeadersRequest(_arrived([body]), {}), _auth(), len(body) - 1)
    with pytest.raises(IncompleteBody):  # longer than declared
        [c async for c in stream.chunks()]


async def test_a_body_with_aws_chunked_framing_or_a_failed_read_is_not_taken_whole():
    body = b"w" * 64
    chunked = BodyStream(_HeadersRequest(_arrived([body]), {"x-amz-decoded-content-length": "64"}),
                         _auth("streaming-unsigned-trailer"), len(body))
    assert chunked._arrived_whole() is None
    broken = _arrived([body])
    broken.set_exception(ConnectionResetError())
    assert BodyStream(_HeadersRequest(broken, {}), _auth(), len(body))._arrived_whole() is None
