"""Bodies stream end to end: a 1 GiB PUT and GET keep the gateway's RSS growth under 100 MiB.

The default run streams 256 MiB through a replica:3 bucket and through an ec:4+2 bucket
(a body held in memory, or an ec body's shards, would still grow the gateway by well over
the 100 MiB bound); the 1 GiB runs are ``slow``."""
from __future__ import annotations

import hashlib
import threading
import time
from typing import Iterator

import psutil
import pytest

from tests.conftest import temporary_bucket
from tests.integration.conftest import make_s3

pytestmark = pytest.mark.integration


GIB = 1024**3
MIB = 1024**2
BLOCK = 1024 * 1024

# (policy, bytes): whole replicas, and shards coded stripe by stripe.
CASES = [("replica:3", 256 * MIB), ("ec:4+2", 256 * MIB),
         pytest.param(("replica:3", GIB), marks=pytest.mark.slow),
         pytest.param(("ec:4+2", GIB), marks=pytest.mark.slow)]


@pytest.fixture(params=CASES, ids=["replica:3-256MiB", "ec:4+2-256MiB", "replica:3-1GiB", "ec:4+2-1GiB"])
def case(request, s3) -> Iterator[tuple[str, int]]:
    """A bucket of the case's policy, and the object size to stream through it."""
    policy, size = request.param
    for bucket in temporary_bucket(s3, policy):
        yield bucket, size


class PatternBody:
    """A 1 GiB file-like body made on the fly (the test process holds 1 MiB of it at a time)."""

    def __init__(self, size: int) -> None:
        self.size, self.pos = size, 0
        self.block = bytes(range(256)) * (BLOCK // 256)
        self.md5 = hashlib.md5()

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.size:
            return b""
        n = BLOCK if n is None or n < 0 else min(n, BLOCK)
        n = min(n, self.size - self.pos)
        off = self.pos % BLOCK
        chunk = (self.block[off:] + self.block[:off])[:n]
        self.pos += n
        self.md5.update(chunk)
        return chunk

    def __len__(self) -> int:
        return self.size

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        assert whence == 0 and pos == 0, "only a rewind to the start is supported"
        self.pos, self.md5 = 0, hashlib.md5()
        return 0


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 1024**2


def test_put_and_get_stream_in_bounded_gateway_memory(cluster, case):
    bucket, size = case
    # No client-side checksum: the client would read the whole body once more before sending.
    s3 = make_s3(cluster, request_checksum_calculation="when_required", response_checksum_validation="when_required")
    gw = cluster.pid_of("gw1")
    body = PatternBody(size)
    with RssSampler(gw) as put_rss:
        # A plain PUT with a known length: the gateway must stream it, not buffer it.
        s3.put_object(Bucket=bucket, Key="big", Body=body, ContentLength=size)
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == size
    assert head["ETag"] == f'"{body.md5.hexdigest()}"'
    md5 = hashlib.md5()
    got = 0
    with RssSampler(gw) as get_rss:
        stream = s3.get_object(Bucket=bucket, Key="big")["Body"]
        for chunk in stream.iter_chunks(BLOCK):
            md5.update(chunk)
            got += len(chunk)
    assert got == size and md5.hexdigest() == body.md5.hexdigest()
    print(f"gateway RSS growth: PUT {put_rss.growth_mib:.1f} MiB, GET {get_rss.growth_mib:.1f} MiB")
    assert put_rss.growth_mib < 100, f"PUT grew the gateway by {put_rss.growth_mib:.1f} MiB"
    assert get_rss.growth_mib < 100, f"GET grew the gateway by {get_rss.growth_mib:.1f} MiB"
    s3.delete_object(Bucket=bucket, Key="big")
