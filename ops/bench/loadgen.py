"""The load generator: closed-loop workers that issue one phase's requests and record them.

A phase is ``concurrency`` workers on one event loop, each issuing its next request as
soon as the previous one finished, either until a deadline (timed phases: small objects)
or until a fixed number of requests were issued (counted phases: large objects). Bodies
come from one reusable in-memory buffer, so the client allocates nothing per request
and memory stays bounded by the buffer whatever the object count.

Invariants: every request ends in the ``Recorder`` as exactly one success (with its
latency and bytes) or one failure (with its kind); a verification that fails (wrong
length, MD5 differing from the data sent or from the ETag) is a failure, never dropped;
the clock is injected; no request is issued after a timed phase's deadline.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import re
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable

from ops.bench.s3client import Outcome

TAIL = 16
CHUNK = 1 << 20
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class PhaseSpec:
    """One phase: an operation on objects of one size at one concurrency, timed or counted."""

    name: str  # small-put, small-get, large-put, large-get, multipart-put
    op: str  # put | get
    size: int
    concurrency: int
    duration_s: float | None = None
    count: int | None = None

    @property
    def label(self) -> str:
        return f"{self.name} c={self.concurrency}"


class Recorder:
    """Successes (latency, bytes) and failures (by kind) of one phase, plus its checks."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.ok = 0
        self.nbytes = 0
        self.errors: Counter[str] = Counter()
        self.checks: list[dict] = []

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def success(self, latency_s: float, nbytes: int) -> None:
        self.ok += 1
        self.nbytes += nbytes
        self.latencies.append(latency_s)

    def failure(self, kind: str) -> None:
        self.errors[kind] += 1


class Payload:
    """Object bodies of one size: a shared random buffer ending in a 16-byte tail unique per key.

    Only the tail differs between objects, so a body is streamed as slices of the shared
    buffer and the MD5 of any object is the precomputed MD5 of the shared part extended
    by its tail.
    """

    def __init__(self, size: int, rng: random.Random) -> None:
        if size < 0:
            raise ValueError("object size must not be negative")
        self.size = size
        self.shared_len = max(0, size - TAIL)
        self.shared = rng.randbytes(self.shared_len)
        self._view = memoryview(self.shared)
        self._md5_base = hashlib.md5(self.shared)

    def tail(self, key: str) -> bytes:
        """The last ``min(16, size)`` bytes of the object named ``key``."""
        return hashlib.md5(key.encode()).digest()[: self.size - self.shared_len]

    def whole(self, key: str) -> bytes:
        """The complete body as one bytes object (for small objects)."""
        return self.shared + self.tail(key)

    async def chunks(self, key: str) -> AsyncIterator[memoryview | bytes]:
        """The body as slices of at most 1 MiB of the shared buffer, then the tail."""
        async for chunk in self.range_chunks(key, 0, self.size):
            yield chunk

    async def range_chunks(self, key: str, start: int, end: int) -> AsyncIterator[memoryview | bytes]:
        """Bytes ``[start, end)`` of the object named ``key`` (a multipart part), as slices of
        at most 1 MiB of the shared buffer, then the part of the tail that falls inside."""
        shared_end = min(end, self.shared_len)
        for off in range(start, shared_end, CHUNK):
            yield self._view[off: min(off + CHUNK, shared_end)]
        if end > self.shared_len:
            yield self.tail(key)[max(start, self.shared_len) - self.shared_len: end - self.shared_len]

    def md5(self, key: str) -> str:
        digest = self._md5_base.copy()
        digest.update(self.tail(key))
        return digest.hexdigest()


def check_put(key: str, out: Outcome, expected_md5: str) -> dict:
    """Whether a PUT's ETag is the MD5 of the body sent (an ETag that is no MD5 is noted, not failed)."""
    etag = out.etag.lower()
    if not _MD5_RE.match(etag):
        return {"op": "put", "key": key, "ok": True, "etag": out.etag,
                "note": "ETag is not an MD5; not compared"}
    return {"op": "put", "key": key, "ok": etag == expected_md5, "etag": out.etag, "expected_md5": expected_md5}


def check_get(key: str, out: Outcome, expected_size: int, expected_md5: str | None) -> dict:
    """Whether a GET returned the expected length and (when computed) the expected MD5 and ETag."""
    result: dict = {"op": "get", "key": key, "bytes": out.nbytes, "expected_bytes": expected_size}
    ok = out.nbytes == expected_size
    if out.md5 is not None:
        result["md5"] = out.md5
        if expected_md5 is not None:
            result["expected_md5"] = expected_md5
            ok = ok and out.md5 == expected_md5
        etag = out.etag.lower()
        result["etag"] = out.etag
        if _MD5_RE.match(etag):
            ok = ok and out.md5 == etag
        else:
            result["note"] = "ETag is not an MD5; compared with the data sent only"
    result["ok"] = ok
    return result


async def drive(spec: PhaseSpec, do_one: Callable[[int], Awaitable[None]],
                clock: Callable[[], float]) -> float:
    """Run ``do_one(i)`` for i = 0, 1, ... from ``spec.concurrency`` workers; the elapsed seconds.

    Stops issuing at ``spec.duration_s`` after the start or after ``spec.count`` calls,
    whichever the spec sets, and returns when the last in-flight call finished.
    """
    if spec.concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    counter = itertools.count()
    start = clock()
    deadline = None if spec.duration_s is None else start + spec.duration_s

    async def worker() -> None:
        while True:
            if deadline is not None and clock() >= deadline:
                return
            i = next(counter)
            if spec.count is not None and i >= spec.count:
                return
            await do_one(i)

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    return clock() - start


def record(rec: Recorder, out: Outcome, latency_s: float) -> bool:
    """Count one outcome; True if it was a success."""
    if out.error is None:
        rec.success(latency_s, out.nbytes)
        return True
    rec.failure(out.error)
    return False
