"""Large objects across lossy, rate-limited links: a PUT and a GET complete and the bytes
are exactly those sent, with 1% packet loss on every link and every host limited to
200 Mbit/s (``tc tbf``). The five-host example deployment (gateway h4, replica:3), the
client on a host of its own.

The CI test moves 8 MiB; the slow one moves 64 MiB and prints the throughput with and
without the faults (figures, not assertions)."""
from __future__ import annotations

import asyncio
import hashlib
import random
import time

import aiohttp
import pytest

from tests.harness.hosts import rules
from tests.harness.hosts.deploy import ACCESS_KEY, CLIENT, SECRET_KEY, Deployment
from tests.harness.hosts.netns import host_executor
from tests.linearizability.s3_register import S3Endpoint, S3Register

pytestmark = pytest.mark.integration

BUCKET = "bulk"
MiB = 1024 * 1024


def faults(d: Deployment) -> rules.Faults:
    everyone = list(d.net.hosts)
    return rules.lossy(everyone, everyone, 0.01) | rules.rate_limit(everyone, 200)


def transfer(d: Deployment, key: str, body: bytes) -> tuple[float, float]:
    """PUT then GET ``body`` through h4's gateway from the client host; seconds of each.
    Asserts the ETag and the bytes read back."""
    async def go() -> tuple[float, float]:
        async with aiohttp.ClientSession() as session:
            reg = S3Register(session, S3Endpoint(d.endpoint("h4"), ACCESS_KEY, SECRET_KEY), BUCKET,
                             request_timeout=600.0)
            await reg.create_bucket()
            t0 = time.monotonic()
            etag = await reg.put_bytes(key, body)
            t1 = time.monotonic()
            back = await reg.get_bytes(key)
            t2 = time.monotonic()
        assert etag == hashlib.md5(body).hexdigest()
        assert len(back) == len(body) and back == body
        return t1 - t0, t2 - t1

    with host_executor(d.net[CLIENT], 1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_an_object_crosses_lossy_rate_limited_links_intact(five_hosts):
    body = random.Random(8).randbytes(8 * MiB)
    five_hosts.net.apply(faults(five_hosts))
    try:
        put_s, get_s = transfer(five_hosts, "eight", body)
    finally:
        five_hosts.net.heal()
    print(f"\n8 MiB with 1% loss and 200 Mbit/s: PUT {8 / put_s:.1f} MiB/s, GET {8 / get_s:.1f} MiB/s")


@pytest.mark.slow
def test_64_mib_with_and_without_loss_and_a_rate_limit(five_hosts):
    body = random.Random(64).randbytes(64 * MiB)
    clean = transfer(five_hosts, "sixty-four-clean", body)
    five_hosts.net.apply(faults(five_hosts))
    try:
        faulty = transfer(five_hosts, "sixty-four-faulty", body)
    finally:
        five_hosts.net.heal()
    for name, (put_s, get_s) in (("no faults", clean), ("1% loss, 200 Mbit/s", faulty)):
        print(f"\n64 MiB, {name}: PUT {64 / put_s:.1f} MiB/s ({put_s:.1f} s), GET {64 / get_s:.1f} MiB/s ({get_s:.1f} s)")
