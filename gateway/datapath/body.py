"""The request body of a PUT as a verified stream of payload chunks.

``BodyStream`` decodes aws-chunked framing when present, counts bytes against the declared
length, and computes MD5 (the ETag), SHA-256 (for signed payloads) and any flexible
checksum the client asked for. It yields every chunk but the last as it arrives and
holds the last one back until the whole body has been checked: a storage node therefore
never receives a complete blob for a body that fails Content-MD5, SHA-256, a checksum or
its declared length, and nothing is stored for it.

A body that stalls for ``body_stall_seconds``, or arrives on average slower than
``body_min_rate`` bytes/s once it has taken that long, fails with RequestTimeout (the
gateway's config; the defaults when the app has no context): like any body failure, its
replica writes are aborted and nothing is stored.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from typing import AsyncIterator

from aiohttp import web

from gateway.auth import checksums
from gateway.auth.sigv4 import AuthContext, verify_payload_sha256
from gateway.auth.streaming import AwsChunkedDecoder
from gateway.context import CTX_KEY
from gateway.datapath.offload import BATCH, Sequenced, offloaded
from objstore.config import GatewayConfig
from objstore.errors import (
    BadDigest,
    IncompleteBody,
    InvalidArgument,
    InvalidDigest,
    InvalidRequest,
    MalformedXML,
    MissingContentLength,
    RequestTimeout,
)

READ_SIZE = 256 * 1024
COALESCE = 1024 * 1024  # bytes per chunk handed to the write path (fewer awaits per byte)
WHOLE_AT_ONCE = 256 * 1024  # a body up to this size that has all arrived is taken in one piece
STREAMING_MODES = ("streaming-signed", "streaming-signed-trailer", "streaming-unsigned-trailer")
_DEFAULTS = GatewayConfig("", "", ())  # the slow-body limits of an app without a gateway context


def _is_chunked(auth: AuthContext) -> bool:
    """Whether the body has aws-chunked framing. As S3, only ``x-amz-content-sha256`` (a
    ``STREAMING-*`` value) says so: a ``Content-Encoding: aws-chunked`` beside a plain hash
    or ``UNSIGNED-PAYLOAD`` is only a coding to drop from the stored Content-Encoding."""
    return auth.payload_mode in STREAMING_MODES


def declared_size(request: web.Request, auth: AuthContext) -> int:
    """The payload size the client declared; raises MissingContentLength when it did not."""
    h = request.headers
    chunked = _is_chunked(auth)
    raw = h.get("x-amz-decoded-content-length") if chunked else h.get("Content-Length")
    if raw is None:
        if chunked:
            raise MissingContentLength("aws-chunked uploads must send x-amz-decoded-content-length.")
        raise MissingContentLength()
    try:
        n = int(raw)
    except ValueError:
        raise InvalidArgument("Invalid content length", ArgumentName="Content-Length", ArgumentValue=raw) from None
    if n < 0:
        raise InvalidArgument("Invalid content length", ArgumentName="Content-Length", ArgumentValue=raw)
    return n


def _content_md5(request: web.Request) -> bytes | None:
    raw = request.headers.get("Content-MD5")
    if raw is None:
        return None
    try:
        digest = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest() from None
    if len(digest) != 16:
        raise InvalidDigest()
    return digest


class BodyStream:
    def __init__(self, request: web.Request, auth: AuthContext, size: int) -> None:
        self.request = request
        self.auth = auth
        self.size = size
        self.received = 0
        self.md5 = hashlib.md5()
        self._want_md5 = _content_md5(request)
        self._sha256 = hashlib.sha256() if auth.payload_mode == "signed" and auth.content_sha256 else None
        h = request.headers
        self._chunked = _is_chunked(auth)
        trailer_names = [t.strip().lower() for t in h.get("x-amz-trailer", "").split(",") if t.strip()]
        self._decoder = (
            AwsChunkedDecoder(auth, auth.payload_mode, trailer_names) if self._chunked else None
        )
        # Flexible checksums: from a header now, or from a trailer at the end.
        self._checksums: dict[str, checksums.Checksum] = {}
        self._expected: dict[str, str] = {}
        for name in trailer_names:
            if name.startswith("x-amz-checksum-"):
                self._checksums[name[len("x-amz-checksum-"):]] = checksums.make_checksum(name[len("x-amz-checksum-"):])
        for name, value in h.items():
            lname = name.lower()
            if lname.startswith("x-amz-checksum-") and lname not in ("x-amz-checksum-type", "x-amz-checksum-mode"):
                alg = lname[len("x-amz-checksum-"):]
                self._checksums.setdefault(alg, checksums.make_checksum(alg))
                self._expected[alg] = value
        self.checksum_values: dict[str, str] = {}

    @property
    def etag(self) -> str:
        return self.md5.hexdigest()

    def _count(self, piece: bytes) -> None:
        self.received += len(piece)
        if self.received > self.size:
            raise IncompleteBody("The body is longer than the declared content length.")

    def _hash(self, piece: bytes) -> None:
        self.md5.update(piece)
        if self._sha256 is not None:
            self._sha256.update(piece)
        for c in self._checksums.values():
            c.update(piece)

    async def _raw(self) -> AsyncIterator[bytes]:
        content = self.request.content
        ctx = self.request.app.get(CTX_KEY)
        cfg = ctx.cfg if ctx is not None else _DEFAULTS
        loop = asyncio.get_running_loop()
        start, total = loop.time(), 0
        while True:
            try:
                async with asyncio.timeout(cfg.body_stall_seconds):
                    # One received piece at a time, as the socket gave it (b"" at the end):
                    # ``readany`` joins every piece buffered into one new bytes, a copy that
                    # ``_coalesced`` makes again when it joins the pieces into chunks.
                    data, end = await content.readchunk()
            except asyncio.CancelledError:
                raise
            except TimeoutError:
                raise RequestTimeout() from None
            except Exception as exc:  # the client went away or sent a broken body
                raise IncompleteBody() from exc
            if not data:
                if end and not content.at_eof():  # the end of one HTTP chunk (chunked encoding)
                    continue
                return
            total += len(data)
            elapsed = loop.time() - start
            if elapsed > cfg.body_stall_seconds and total < cfg.body_min_rate * elapsed:
                raise RequestTimeout()
            yield data

    async def _payload(self) -> AsyncIterator[bytes]:
        if self._decoder is None:
            async for data in self._raw():
                yield data
            return
        async for data in self._raw():
            for piece in self._decoder.feed(data):
                if piece:
                    yield piece
        trailers = self._decoder.finish()
        for name, value in trailers.items():
            if name.startswith("x-amz-checksum-"):
                self._expected[name[len("x-amz-checksum-"):]] = value

    def _verify(self) -> None:
        if self.received != self.size:
            raise IncompleteBody()
        if self._want_md5 is not None and self.md5.digest() != self._want_md5:
            raise BadDigest()
        if self._sha256 is not None:
            verify_payload_sha256(self.auth, self._sha256.hexdigest())
        for alg, c in self._checksums.items():
            got = c.b64digest()
            want = self._expected.get(alg)
            if want is None:
                raise InvalidRequest(f"The x-amz-checksum-{alg} value was declared but not sent.")
            if got != want:
                raise BadDigest(f"The {alg.upper()} you specified did not match the calculated checksum.")
            self.checksum_values[alg] = got

    async def _coalesced(self) -> AsyncIterator[bytes]:
        """Payload pieces joined into chunks of exactly COALESCE bytes (the last may be
        shorter): a stripe of an ``ec`` write is then a whole chunk, coded from views of it
        rather than copied into a stripe buffer first. A piece crossing a chunk's end is cut
        as views (its two parts go into the two joins: no byte is copied twice)."""
        parts: list[bytes | memoryview] = []
        held = 0
        async for piece in self._payload():
            if not parts and len(piece) == COALESCE:
                yield piece
                continue
            parts.append(piece)
            held += len(piece)
            while held >= COALESCE:
                over = held - COALESCE
                rest: memoryview | None = None
                if over:
                    last = memoryview(parts[-1])
                    parts[-1], rest = last[:len(last) - over], last[len(last) - over:]
                yield b"".join(parts)
                parts, held = ([rest] if rest is not None else []), over
        if parts:
            yield b"".join(parts)

    def _arrived_whole(self) -> bytes | None:
        """The whole payload when it has all arrived already (a small body that came with its
        request's head: the server read it to its end) and has no aws-chunked framing to
        decode; None otherwise. Nothing is left to wait for, so no stall timer is needed,
        and the one piece needs no coalescing: the checks are those of any body."""
        if self._decoder is not None or self.size > WHOLE_AT_ONCE:
            return None
        content = self.request.content
        if not content.is_eof() or content.exception() is not None:
            return None
        return content.read_nowait()

    def _hash_all(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self._hash(piece)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Payload chunks of about COALESCE bytes; the tail only after every check passed.

        A body of ``OFFLOAD_SIZE`` bytes or more is hashed (MD5, SHA-256, checksums) on the
        worker pool (:mod:`gateway.datapath.offload`), ``BATCH`` bytes per job, one job
        in flight: a chunk is passed on as soon as it arrived, its hashes are computed while
        the loop receives and sends the next ones. A smaller body is hashed on the event loop
        as each chunk arrives (a hand-over per chunk cost more than it gained). A chunk is
        yielded once its successor arrived and so is never the tail; the tail is yielded
        after every hash was computed and ``_verify`` passed.
        """
        whole = self._arrived_whole()
        if whole is not None:
            self._count(whole)
            self._hash(whole)
            self._verify()
            if whole:
                yield whole
            return
        jobs = Sequenced() if offloaded(self.size) else None
        batch: list[bytes] = []
        batched = 0
        pending: bytes | None = None
        try:
            async for chunk in self._coalesced():
                self._count(chunk)
                if jobs is None:
                    self._hash(chunk)
                else:
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= BATCH:
                        await jobs.submit(self._hash_all, batch)
                        batch, batched = [], 0
                if pending is not None:
                    yield pending
                pending = chunk
            if jobs is not None:
                if batch:
                    await jobs.submit(self._hash_all, batch)
                await jobs.wait()
        finally:
            if jobs is not None:
                jobs.cancel()
        self._verify()
        if pending is not None:
            yield pending


async def read_xml_body(request: web.Request, auth: AuthContext, limit: int) -> bytes:
    """The whole (small) request body, verified like an object body (:class:`BodyStream`);
    MalformedXML when the declared size is over ``limit``."""
    size = declared_size(request, auth)
    if size > limit:
        raise MalformedXML("The XML you provided was too large.")
    return b"".join([chunk async for chunk in BodyStream(request, auth, size).chunks()])
