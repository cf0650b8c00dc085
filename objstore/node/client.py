"""Client of the storage nodes' internal API, over one shared keep-alive aiohttp session.

Every request is signed with the cluster secret. Errors come back as the ObjstoreError the
node raised (via ``raise_for_error_body``); connection failures and timeouts become
``ServiceUnavailable`` so callers fail over to another replica. A GET body that ends early
(the node aborts a stream whose block failed verification) raises ``ServiceUnavailable``
from ``iter_chunks``: never treat a short body as data.

With ``read_stall`` (the gateway's read-stall bound; None: the ordinary socket timeout),
a GET whose node sends nothing for that long (before its first byte or mid-stream) fails
the same way, so a paused node delays a read by at most that bound. A streamed PUT asks
for ``100-continue``: a node refusing it (507 when full) does so before any byte is taken
from the body, so the caller may send the same body elsewhere.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from typing import Any, AsyncIterable, AsyncIterator
from urllib.parse import quote, unquote

import aiohttp
from yarl import URL

from objstore import internal_auth
from objstore.errors import AccessDenied, IncompleteBody, ObjstoreError, ServiceUnavailable, raise_for_error_body
from objstore.internal_http import HttpPool
from objstore.node import blob_batch
from objstore.node.blob_batch import BlobWrite
from objstore.internal_stream import StreamAnswer, StreamPool
from objstore.percent import quote_part
from objstore.manifest import CommitManifest
from objstore.tls import base_url, request_ssl

BUCKET_HEADER = "X-Objstore-Bucket"
KEY_HEADER = "X-Objstore-Key"
POLICY_HEADER = "X-Objstore-Policy"
SIZE_HEADER = "X-Objstore-Size"

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=3.0, sock_connect=3.0, sock_read=30.0)


def node_timeout(sock_read: float) -> aiohttp.ClientTimeout:
    """:data:`DEFAULT_TIMEOUT` with another socket read timeout (seconds a node may send nothing)."""
    return aiohttp.ClientTimeout(total=None, connect=DEFAULT_TIMEOUT.connect, sock_connect=DEFAULT_TIMEOUT.sock_connect,
                                 sock_read=sock_read)
_CONN_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


def blob_path(version_id: str, shard: int) -> str:
    return f"/blobs/{quote_part(version_id)}/{int(shard)}"


class BlobStream:
    """An open GET: ``status``, ``size`` (whole blob), ``content_length`` (bytes to come)."""

    def __init__(self, resp: aiohttp.ClientResponse, address: str) -> None:
        self._resp = resp
        self._address = address
        self.status = resp.status
        self.size = int(resp.headers.get(SIZE_HEADER, "0"))
        self.content_length = resp.content_length if resp.content_length is not None else self.size
        self.content_range = resp.headers.get("Content-Range")

    async def iter_chunks(self, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        """The body; raises ServiceUnavailable if it ends before ``content_length`` bytes."""
        got = 0
        try:
            async for chunk in self._resp.content.iter_chunked(chunk_size):
                got += len(chunk)
                yield chunk
        except _CONN_ERRORS as exc:
            raise ServiceUnavailable(f"blob stream from {self._address} broke after {got} bytes: {exc!r}") from None
        if got != self.content_length:
            raise ServiceUnavailable(f"blob stream from {self._address} ended at {got} of {self.content_length} bytes")

    async def read(self) -> bytes:
        return b"".join([c async for c in self.iter_chunks()])


class RawBlobStream:
    """:class:`BlobStream` over a streamed answer (:mod:`objstore.internal_stream`): the
    body as views of the memory it was received into."""

    def __init__(self, answer: StreamAnswer, address: str) -> None:
        self._answer = answer
        self._address = address
        self.status = answer.status
        self.size = int(answer.headers.get(SIZE_HEADER.lower(), "0"))
        self.content_length = answer.content_length if answer.content_length is not None else self.size
        self.content_range = answer.headers.get("content-range")

    async def iter_chunks(self, chunk_size: int = 0) -> AsyncIterator[memoryview]:
        """The body (``chunk_size`` is ignored: pieces come as received, up to 1 MiB);
        raises ServiceUnavailable if it ends before ``content_length`` bytes."""
        got = 0
        try:
            async for chunk in self._answer.chunks():
                got += len(chunk)
                yield chunk
        except _CONN_ERRORS + (EOFError,) as exc:
            raise ServiceUnavailable(f"blob stream from {self._address} broke after {got} bytes: {exc!r}") from None
        if got != self.content_length:
            raise ServiceUnavailable(f"blob stream from {self._address} ended at {got} of {self.content_length} bytes")

    async def read(self) -> bytes:
        return b"".join([c async for c in self.iter_chunks()])


def _seconds(timeout: aiohttp.ClientTimeout) -> float:
    """One bound for a whole short exchange from an aiohttp timeout."""
    return float(timeout.total or timeout.sock_read or 30.0)


class HeldBlob:
    """A small read answered whole (through the call pool): the :class:`BlobStream` interface
    over bytes already received in full (a short answer fails before it gets here)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.size = int(headers.get(SIZE_HEADER.lower(), "0"))
        self.content_length = len(body)
        self.content_range = headers.get("content-range")
        self._body = body

    async def iter_chunks(self, chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
        for at in range(0, len(self._body), chunk_size):
            yield self._body[at:at + chunk_size]

    async def read(self) -> bytes:
        return self._body


SMALL_READ = 256 * 1024  # reads of at most this many bytes go whole through the pool
MANIFEST_ENCODINGS = 256  # manifests whose JSON encoding is kept (one goes to several nodes)


class StorageClient:
    """``tls``: a client context (:func:`objstore.tls.client_context`) to call the nodes over
    HTTPS, verified by it; None calls them over plain HTTP. ``read_stall``: see the module
    docstring. ``pool``: the small calls (JSON calls, blob writes held in memory) go through
    it (:mod:`objstore.internal_http`, same TLS context) instead of ``session``. ``streams``:
    streamed blob reads go through it (:mod:`objstore.internal_stream`, same TLS context)
    instead of ``session``."""

    def __init__(self, session: aiohttp.ClientSession, secret: str,
                 timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT, *, tls: ssl.SSLContext | None = None,
                 read_stall: float | None = None, pool: HttpPool | None = None,
                 streams: StreamPool | None = None) -> None:
        self._session = session
        self._pool = pool
        self._streams = streams
        self._secret = secret
        self._timeout = timeout
        self._read_timeout = timeout if read_stall is None else aiohttp.ClientTimeout(
            total=None, connect=timeout.connect, sock_connect=timeout.sock_connect, sock_read=read_stall)
        self._tls = tls
        self._ssl = request_ssl(tls)
        self._manifests: dict[int, tuple[CommitManifest, bytes]] = {}  # id -> (manifest, its JSON)

    @property
    def call_seconds(self) -> float:
        """The bound on one short call (a blob write held in memory, a JSON call)."""
        return _seconds(self._timeout)

    def _url(self, address: str, path_qs: str) -> URL:
        return URL(base_url(address, self._tls) + path_qs, encoded=True)

    def _sign(self, address: str, method: str, path_qs: str, extra: dict[str, str] | None = None,
              stream_length: int | None = None) -> dict[str, str]:
        return internal_auth.headers(self._secret, method, path_qs, stream_length=stream_length, target=address,
                                     extra=extra)

    async def put_blob(self, address: str, version_id: str, shard: int, bucket: str, key: str, policy: str,
                       size: int, body: AsyncIterable[bytes] | bytes, *, timeout: float | None = None) -> dict:
        """Stream ``size`` bytes to a node; returns ``{"size", "xxh64"}`` once durable there.

        ``body`` is an async iterable of chunks, or for small blobs the bytes themselves
        (sent with the request headers in one write). ``timeout``: seconds the whole call
        may take (a body in memory only; default: the client's own bounds).

        Raises IncompleteBody if ``body`` yields fewer or more bytes than ``size`` (the request
        is aborted, the node stores nothing), the node's error, or ServiceUnavailable.
        """
        path = blob_path(version_id, shard)
        short: list[str] = []
        if isinstance(body, (bytes, bytearray, memoryview)) and len(body) != size:
            raise IncompleteBody(f"body has {len(body)} of {size} bytes")

        async def counted() -> AsyncIterator[bytes]:
            sent = 0
            async for chunk in body:
                sent += len(chunk)
                if sent > size:
                    short.append(f"body has more than {size} bytes")
                    raise IncompleteBody(short[0])
                yield chunk
            if sent != size:
                short.append(f"body has {sent} of {size} bytes")
                raise IncompleteBody(short[0])

        headers = self._sign(address, "PUT", path, {
            BUCKET_HEADER: quote_part(bucket),
            KEY_HEADER: quote_part(key),
            POLICY_HEADER: policy,
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }, stream_length=size)
        try:
            if self._pool is not None and isinstance(body, bytes):
                answer = await self._pool.request("PUT", address, path, headers, body,
                                                  timeout=_seconds(self._timeout) if timeout is None else timeout)
                raise_for_error_body(answer.status, answer.body)
                return json.loads(answer.body)
            data = body if isinstance(body, (bytes, bytearray, memoryview)) else counted()
            bound = self._timeout if timeout is None or data is not body else aiohttp.ClientTimeout(total=timeout)
            async with self._session.put(self._url(address, path), data=data, headers=headers,
                                         timeout=bound, ssl=self._ssl, expect100=data is not body) as resp:
                raw = await resp.read()
                raise_for_error_body(resp.status, raw)
                return await resp.json(content_type=None)
        except ObjstoreError:
            raise
        except BaseException as exc:
            if short:
                raise IncompleteBody(short[0]) from None
            if isinstance(exc, _CONN_ERRORS):
                raise ServiceUnavailable(f"storage node {address} unreachable: {exc!r}") from None
            raise

    async def put_blobs(self, address: str, blobs: list[BlobWrite], *,
                        timeout: float | None = None) -> list[dict | ObjstoreError]:
        """Store several small blobs on a node in one call (``PUT /blobs/batch``); per blob
        ``{"size", "xxh64"}`` once durable there, or the error that failed it. Raises the
        error of a failed call (every blob failed with it: InvalidArgument, a 404 InternalError
        from a node without the route, ServiceUnavailable, ...). ``timeout``: seconds the
        call may take (default: the client's own bound)."""
        data = blob_batch.encode_request(blobs)
        path = blob_batch.PATH
        headers = internal_auth.headers(self._secret, "PUT", path, body=data, target=address,
                                        extra={"Content-Type": "application/octet-stream"})
        try:
            if self._pool is not None:
                answer = await self._pool.request("PUT", address, path, headers, data,
                                                  timeout=_seconds(self._timeout) if timeout is None else timeout)
                status, raw = answer.status, answer.body
            else:
                async with self._session.put(self._url(address, path), data=data, headers=headers,
                                             timeout=self._timeout if timeout is None else aiohttp.ClientTimeout(
                                                 total=timeout), ssl=self._ssl) as resp:
                    status, raw = resp.status, await resp.read()
        except _CONN_ERRORS as exc:
            raise ServiceUnavailable(f"storage node {address} unreachable: {exc!r}") from None
        raise_for_error_body(status, raw)
        return blob_batch.decode_answer(raw, len(blobs))

    def reads_small(self, start: int | None, end: int | None) -> bool:
        """Whether a read of bytes ``start..end`` is answered whole (:meth:`get_small`)."""
        return self._pool is not None and start is not None and end is not None and end - start < SMALL_READ

    async def get_small(self, address: str, version_id: str, shard: int, start: int, end: int, *,
                        patient: bool = False) -> HeldBlob:
        """Bytes ``start..end`` (inclusive, fewer than ``SMALL_READ``: :meth:`reads_small`) of a
        blob, read whole through the call pool; the node's pause is bounded as for
        :meth:`get_blob`, and it raises the same errors."""
        path = blob_path(version_id, shard)
        timeout = self._timeout if patient else self._read_timeout
        try:
            answer = await self._pool.request("GET", address, path,
                                              self._sign(address, "GET", path, {"Range": f"bytes={start}-{end}"}),
                                              timeout=float(timeout.sock_read or 30.0))
        except _CONN_ERRORS as exc:
            raise ServiceUnavailable(f"storage node {address} unreachable: {exc!r}") from None
        raise_for_error_body(answer.status, answer.body)
        return HeldBlob(answer.status, answer.headers, answer.body)

    @contextlib.asynccontextmanager
    async def get_blob(self, address: str, version_id: str, shard: int, start: int | None = None,
                       end: int | None = None, *, patient: bool = False) -> AsyncIterator[BlobStream]:
        """Open a read of a blob (bytes ``start..end`` inclusive, or all of it).

        The node may pause for ``read_stall`` seconds at most, or with ``patient`` (nothing
        else could serve these bytes, so abandoning the node gains nothing) for the
        client's ordinary socket timeout. Raises NoSuchKey, InvalidRange, CorruptBlob,
        ServiceUnavailable before any byte.
        """
        path = blob_path(version_id, shard)
        extra = {}
        if start is not None or end is not None:
            # "bytes=-n" would mean the last n bytes: an open start is byte 0 here.
            extra["Range"] = f"bytes={0 if start is None else start}-{'' if end is None else end}"
        if self.reads_small(start, end):
            yield await self.get_small(address, version_id, shard, start, end, patient=patient)
            return
        if self._streams is not None:
            async with self._get_streamed(address, path, extra, patient) as blob:
                yield blob
            return
        try:
            resp = await self._session.get(self._url(address, path), headers=self._sign(address, "GET", path, extra),
                                           timeout=self._timeout if patient else self._read_timeout, ssl=self._ssl)
        except _CONN_ERRORS as exc:
            raise ServiceUnavailable(f"storage node {address} unreachable: {exc!r}") from None
        try:
            if resp.status >= 400:
                try:
                    raw = await resp.read()
                except _CONN_ERRORS as exc:
                    raise ServiceUnavailable(f"storage node {address}: {exc!r}") from None
                raise_for_error_body(resp.status, raw)
            yield BlobStream(resp, address)
        finally:
            resp.release()

    @contextlib.asynccontextmanager
    async def _get_streamed(self, address: str, path: str, extra: dict[str, str],
                            patient: bool) -> AsyncIterator[RawBlobStream]:
        timeout = self._timeout if patient else self._read_timeout
        assert self._streams is not None
        opened = self._streams.get(address, path, self._sign(address, "GET", path, extra),
                                   connect_timeout=float(timeout.sock_connect or timeout.connect or 3.0),
                                   stall=float(timeout.sock_read or 30.0))
        try:
            answer = await opened.__aenter__()
        except _CONN_ERRORS + (EOFError,) as exc:
            raise ServiceUnavailable(f"storage node {address} unreachable: {exc!r}") from None
        try:
            if answer.status >= 400:
                try:
                    raw = await answer.read()
                except _CONN_ERRORS + (EOFError,) as exc:
                    raise ServiceUnavailable(f"storage node {address}: {exc!r}") from None
                raise_for_error_body(answer.status, raw)
            yield RawBlobStream(answer, address)
        finally:
            await opened.__aexit__(None, None, None)

    async def _json(self, method: str, address: str, path_qs: str, body: Any = None,
                    timeout: aiohttp.ClientTimeout | None = None, *, data: bytes | None = None) -> tuple[int, Any]:
        """One JSON call: ``body`` encoded as JSON, or ``data``, JSON already encoded."""
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
        headers = internal_auth.headers(self._secret, method, path_qs, body=data, target=address)
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            if self._pool is not None:
                answer = await self._pool.request(method, address, path_qs, headers, data,
                                                  timeout=_seconds(timeout or self._timeout))
                raise_for_error_body(answer.status, answer.body)
                return answer.status, (json.loads(answer.body) if answer.body else answer.headers)
            async with self._session.request(method, self._url(address, path_qs), ssl=self._ssl, data=data,
                                             headers=headers, timeout=timeout or self._timeout) as resp:
                raw = await resp.read()
                raise_for_error_body(resp.status, raw)
                if not raw:
                    return resp.status, dict(resp.headers)
                return resp.status, await resp.json(content_type=None)
        except ObjstoreError:
            raise
        except _CONN_ERRORS as exc:
            raise ServiceUnavailable(f"storage node {address} unreachable: {exc!r}") from None

    async def head_blob(self, address: str, version_id: str, shard: int) -> dict | None:
        """``{"size", "bucket", "key", "xxh64"}`` of a blob, or None if the node lacks it."""
        path = blob_path(version_id, shard)
        try:
            async with self._session.head(self._url(address, path), headers=self._sign(address, "HEAD", path),
                                          timeout=self._timeout, ssl=self._ssl) as resp:
                if resp.status == 404:
                    return None
                if resp.status == 403:
                    raise AccessDenied("internal request not authenticated")
                if resp.status >= 400:
                    raise_for_error_body(resp.status, b"")  # a HEAD answer has no body to decode
                h = resp.headers
                return {
                    "size": int(h.get(SIZE_HEADER, "0")),
                    "bucket": unquote(h.get(BUCKET_HEADER, "")),
                    "key": unquote(h.get(KEY_HEADER, "")),
                    "xxh64": h.get("X-Objstore-Xxh64", ""),
                }
        except _CONN_ERRORS as exc:
            raise ServiceUnavailable(f"storage node {address} unreachable: {exc!r}") from None

    async def delete_blob(self, address: str, version_id: str, shard: int) -> None:
        """Delete a blob (idempotent)."""
        await self._json("DELETE", address, blob_path(version_id, shard))

    async def list_versions(self, address: str, bucket: str, key: str) -> list[dict]:
        """The versions of (bucket, key) the node holds: ``{version_id, shard, size, created, ...}``."""
        path_qs = f"/keys?bucket={quote(bucket, safe='')}&key={quote(key, safe='')}"
        _, body = await self._json("GET", address, path_qs)
        return list(body["versions"])

    async def stats(self, address: str) -> dict:
        _, body = await self._json("GET", address, "/stats")
        return body

    async def scrub_status(self, address: str) -> dict:
        """The node's scrubber status (``GET /v1/scrub``)."""
        _, body = await self._json("GET", address, "/v1/scrub")
        return body

    async def scrub_start(self, address: str) -> dict:
        """Start a scrub pass on the node now: ``{"pass_id", "status"}``."""
        _, body = await self._json("POST", address, "/v1/scrub/start")
        return body

    def _manifest_json(self, manifest: CommitManifest) -> bytes:
        """``manifest`` as JSON, encoded once for the several nodes it goes to (a bounded
        cache by identity: the last ``MANIFEST_ENCODINGS`` manifests sent)."""
        held = self._manifests.get(id(manifest))
        if held is not None and held[0] is manifest:
            return held[1]
        encoded = json.dumps(manifest.to_dict(), ensure_ascii=False).encode()
        self._manifests[id(manifest)] = (manifest, encoded)
        if len(self._manifests) > MANIFEST_ENCODINGS:
            del self._manifests[next(iter(self._manifests))]
        return encoded

    async def put_manifest(self, address: str, manifest: CommitManifest, timeout: float = 2.0,
                           ring_epoch: int = 0) -> bool:
        """Store a commit manifest placed by the ring of ``ring_epoch`` on a node; returns
        whether it was new there (durable either way). Raises StaleRingEpoch when the node's
        manifests were handed over to a newer ring."""
        _, body = await self._json("PUT", address, f"/manifests?ring_epoch={ring_epoch}",
                                   timeout=aiohttp.ClientTimeout(total=timeout), data=self._manifest_json(manifest))
        return bool(body.get("stored"))

    async def put_manifests(self, address: str, manifests: list[CommitManifest], timeout: float = 10.0,
                            ring_epoch: int = 0) -> int:
        """Store a batch of commit manifests on a node (one fsync); returns how many were new.
        Raises StaleRingEpoch as :meth:`put_manifest`."""
        # {"manifests": [...], "ring_epoch": n}, from each manifest's encoding
        data = b'{"manifests": [%s], "ring_epoch": %d}' % (b", ".join(self._manifest_json(m) for m in manifests),
                                                           int(ring_epoch))
        _, body = await self._json("PUT", address, "/manifests/batch", timeout=aiohttp.ClientTimeout(total=timeout),
                                   data=data)
        return int(body.get("stored", 0))

    async def manifest_page(self, address: str, after: tuple[str, str], limit: int, cursor: str = "", fence: int = 0,
                            timeout: float = 10.0) -> tuple[list[tuple[str, str, list[CommitManifest]]], str]:
        """The node's next ``limit`` keys after ``after`` (bucket, key), each with its
        manifests, and the cursor of the next page; the node first raises its ring-epoch
        fence to ``fence`` (:mod:`objstore.node.manifests`)."""
        path_qs = (f"/manifests/page?after_bucket={quote(after[0], safe='')}&after_key={quote(after[1], safe='')}"
                   f"&limit={limit}&cursor={quote(cursor, safe='')}&fence={fence}")
        _, body = await self._json("GET", address, path_qs, timeout=aiohttp.ClientTimeout(total=timeout))
        if "cursor" not in body:
            # A node that predates ring-epoch fences: it raised no fence, and its page has no
            # cursor (an empty one would say the walk ended after the first page).
            raise ServiceUnavailable(f"storage node {address} walks its manifests without a fence or cursor; "
                                     "upgrade it before its manifests can be handed over")
        page = [(d["bucket"], d["key"], [CommitManifest.from_dict(m) for m in d["manifests"]]) for d in body["keys"]]
        return page, str(body["cursor"] or "")

    async def get_manifests(self, address: str, bucket: str, key: str, timeout: float = 2.0,
                            ring_epoch: int = 0) -> list[CommitManifest]:
        """The node's manifests of (bucket, key), newest commit index first; with
        ``ring_epoch`` (a quorum reader's ring), raises StaleRingEpoch when the node's
        manifests were handed over to a newer ring."""
        path_qs = f"/manifests?bucket={quote(bucket, safe='')}&key={quote(key, safe='')}"
        if ring_epoch:
            path_qs += f"&ring_epoch={ring_epoch}"
        _, body = await self._json("GET", address, path_qs, timeout=aiohttp.ClientTimeout(total=timeout))
        return [CommitManifest.from_dict(d) for d in body["manifests"]]
