"""Measure the gateway's memory under a flood of requests with distinct bogus access keys.

Not a test: starts a local cluster, records the gateway's RSS, sends ``--requests``
SigV4-signed requests each with a new random access key (``--concurrency`` at a time),
records the RSS again and prints the growth and the answers' status codes.

    .venv/bin/python -m tests.credential_flood --requests 20000
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import secrets
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.cluster_harness import LocalCluster


def signed_headers(url: str) -> dict[str, str]:
    req = AWSRequest(method="GET", url=url)
    S3SigV4Auth(Credentials("BOGUS" + secrets.token_hex(10).upper(), "x"), "s3", "us-east-1").add_auth(req)
    return dict(req.prepare().headers.items())


async def flood(endpoint: str, total: int, concurrency: int) -> collections.Counter:
    statuses: collections.Counter = collections.Counter()
    url = f"{endpoint}/some-bucket"
    queue = iter(range(total))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            async with session.get(url, headers=signed_headers(url)) as resp:
                await resp.read()
                statuses[resp.status] += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return statuses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp) / "data", storage_nodes=3).start()
        try:
            gateway = psutil.Process(cluster.processes("gateway")[0]["pid"])
            asyncio.run(flood(cluster.endpoint, 500, args.concurrency))  # warm up: imports, pools
            before = gateway.memory_info().rss
            start = time.monotonic()
            statuses = asyncio.run(flood(cluster.endpoint, args.requests, args.concurrency))
            elapsed = time.monotonic() - start
            after = gateway.memory_info().rss
        finally:
            cluster.stop()
    print(f"{args.requests} requests with distinct bogus keys in {elapsed:.1f}s; statuses {dict(statuses)}")
    print(f"gateway RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB: growth {(after - before) / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
