"""The register workload through S3 gateways (not the metadata client): put/get/delete/cas
of objects whose bodies carry their value, plus write-once objects whose survival is
checked after the faults.

:class:`S3Register` implements :class:`~tests.linearizability.workload.Register` over
path-style S3 requests signed with SigV4 (``gateway.auth.sign``):

- ``put``: PutObject of :func:`body_of` the value (sizes from 64 B to ~300 KiB, so both the
  whole-body and the streaming write paths run);
- ``get``: GetObject (a strong read at the gateway); the body must be exactly
  :func:`body_of` the value it names, or the read raises :class:`CorruptBody` (a bug: it
  propagates and fails the test); NoSuchKey reads ``None``;
- ``delete``: DeleteObject in an unversioned bucket;
- ``cas``: PutObject with ``If-Match: <ETag of the expected value>`` (an MD5 of its body)
  or ``If-None-Match: *``; 412 (and 404 for If-Match on an absent key) is the definite
  result ``PRECONDITION_FAILED``.

:func:`classify`: a 5xx (503 from a gateway cut off from the metadata majority included),
a timeout or a connection error is unknown; any other 4xx is a bug and propagates.

Invariants: values are unique per write (``c<client>.<n>``, from the shared workload), so
the register model compares values where S3 compares ETags; every request has its own
deadline (``request_timeout``), so an operation's outcome is known or unknown in bounded time.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import zlib
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from gateway.auth.sign import SigV4Signer, encode_path
from tests.linearizability.history import CAS_OK, PRECONDITION_FAILED, UNKNOWN, Outcome, failed, returned

_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
SIZES = (64, 4096, 70_000, 300_000)


class S3Failure(Exception):
    """An S3 error answer: its status and code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code = status, code


class CorruptBody(AssertionError):
    """A GET answered bytes that are not the body of any value."""


def body_of(value: str) -> bytes:
    """The object body that carries ``value``: ``value|`` repeated to a size chosen by its CRC."""
    crc = zlib.crc32(value.encode())
    size = SIZES[crc % len(SIZES)] + crc % 1000
    unit = (value + "|").encode()
    return (unit * (size // len(unit) + 1))[:max(size, len(unit))]


def value_of(body: bytes) -> str:
    """The value a body carries; raises CorruptBody if the body is not exactly its body."""
    value = body.split(b"|", 1)[0].decode(errors="replace")
    if body_of(value) != body:
        raise CorruptBody(f"a body of {len(body)} bytes starting {body[:40]!r} is not the body of {value!r}")
    return value


def etag_of(value: str) -> str:
    return hashlib.md5(body_of(value)).hexdigest()


def classify(kind: str, exc: BaseException) -> Outcome | None:
    """The history outcome of an exception of :class:`S3Register` (module docstring)."""
    if isinstance(exc, S3Failure):
        if kind == "get" and exc.code == "NoSuchKey":
            return returned(None)
        if kind == "cas" and (exc.status == 412 or exc.code == "NoSuchKey"):
            return failed(PRECONDITION_FAILED)
        if exc.status >= 500:
            return UNKNOWN
        return None
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, OSError, aiohttp.ClientError)):
        return UNKNOWN
    return None


@dataclass
class S3Endpoint:
    """One gateway and the key pair to sign with."""

    endpoint: str
    access_key: str
    secret_key: str


class S3Register:
    """The register operations on ``bucket`` through one gateway; one aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, gw: S3Endpoint, bucket: str,
                 request_timeout: float = 10.0) -> None:
        self.session, self.bucket = session, bucket
        parts = urlsplit(gw.endpoint)
        self.base, self.host = f"{parts.scheme}://{parts.netloc}", parts.netloc
        self.signer = SigV4Signer(gw.access_key, gw.secret_key)
        self.timeout = aiohttp.ClientTimeout(total=request_timeout)

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[int, bytes, Mapping[str, str]]:
        signed = self.signer.sign(method, self.host, path, headers=headers)
        if method in ("PUT", "POST"):
            signed["Content-Length"] = str(len(body))
        url = URL(self.base + encode_path(path), encoded=True)
        async with self.session.request(method, url, data=body or None, headers=signed,
                                        timeout=self.timeout) as resp:
            return resp.status, await resp.read(), resp.headers.copy()

    async def _object(self, method: str, key: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> tuple[bytes, Mapping[str, str]]:
        status, data, hdrs = await self.request(method, f"/{self.bucket}/{key}", body, headers)
        if status >= 300:
            m = _CODE.search(data)
            raise S3Failure(status, m.group(1).decode() if m else "")
        return data, hdrs

    async def create_bucket(self) -> None:
        status, data, _ = await self.request("PUT", f"/{self.bucket}")
        if status != 200 and b"BucketAlreadyOwnedByYou" not in data:
            raise S3Failure(status, data.decode(errors="replace")[:200])

    async def put(self, key: str, value: str) -> None:
        await self._object("PUT", key, body_of(value))

    async def get(self, key: str) -> str | None:
        data, _ = await self._object("GET", key)
        return value_of(data)

    async def delete(self, key: str) -> None:
        await self._object("DELETE", key)

    async def cas(self, key: str, expected: str | None, value: str) -> str:
        cond = {"If-None-Match": "*"} if expected is None else {"If-Match": f'"{etag_of(expected)}"'}
        await self._object("PUT", key, body_of(value), cond)
        return CAS_OK

    async def put_bytes(self, key: str, body: bytes) -> str:
        """PUT raw bytes; the ETag answered."""
        _, hdrs = await self._object("PUT", key, body)
        return hdrs.get("ETag", "").strip('"')

    async def get_bytes(self, key: str) -> bytes:
        data, _ = await self._object("GET", key)
        return data
