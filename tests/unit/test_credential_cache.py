"""The gateway's credential cache under a flood of unknown access keys.

A fake metadata client counts lookups; a fake clock drives the TTLs and the miss budget.
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from gateway.credential_cache import MAX_ACCESS_KEY_LENGTH, CredentialCache
from objstore.errors import InvalidAccessKeyId, ServiceUnavailable, SlowDown
from objstore.types import Credential

REAL = Credential("OBJREALKEY0000001", "secret", owner="alice")


class FakeMeta:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay = delay

    async def get_credential(self, access_key: str) -> Credential | None:
        self.calls.append(access_key)
        if self.delay:
            await asyncio.sleep(self.delay)
        return REAL if access_key == REAL.access_key else None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(meta: FakeMeta, clock: FakeClock, **kw) -> CredentialCache:
    return CredentialCache(meta.get_credential, clock=clock, **kw)


async def flood(cache: CredentialCache, keys: list[str]) -> tuple[int, int]:
    """(unknown, slowed) answers for ``keys`` looked up one after another."""
    unknown = slowed = 0
    for key in keys:
        try:
            assert await cache.get(key) is None
            unknown += 1
        except SlowDown:
            slowed += 1
    return unknown, slowed


def test_distinct_bogus_keys_stay_bounded() -> None:
    meta, clock = FakeMeta(), FakeClock()
    cache = make(meta, clock, max_entries=500, max_unknown=100, misses_per_second=50)

    async def run() -> None:
        keys = [f"BOGUSKEY{i:012d}" for i in range(2500)]
        for second in range(5):  # 500 new keys a second for 5 seconds
            await flood(cache, keys[second * 500:(second + 1) * 500])
            clock.now += 1.0
            assert len(cache) <= 100

    asyncio.run(run())
    # The first second's burst (50) plus 50 a second after it: the metadata service is
    # asked a bounded number of times, not once per key.
    assert len(meta.calls) <= 50 + 5 * 50
    assert len(cache) <= 100


def test_real_keys_still_work_during_a_flood() -> None:
    meta, clock = FakeMeta(), FakeClock()
    cache = make(meta, clock, misses_per_second=10)

    async def run() -> None:
        assert await cache.get(REAL.access_key) == REAL
        await flood(cache, [f"BOGUSKEY{i:012d}" for i in range(1000)])
        clock.now += 60.0  # the real key's entry has expired; its refresh is not rate limited
        await flood(cache, [f"OTHERKEY{i:012d}" for i in range(1000)])
        assert await cache.get(REAL.access_key) == REAL

    asyncio.run(run())


def test_unknown_keys_never_evict_known_ones() -> None:
    meta, clock = FakeMeta(), FakeClock()
    cache = make(meta, clock, max_entries=10, max_unknown=10, misses_per_second=10_000)

    async def run() -> None:
        assert await cache.get(REAL.access_key) == REAL
        await flood(cache, [f"BOGUSKEY{i:012d}" for i in range(1000)])
        assert len(cache) <= 11
        calls = len(meta.calls)
        assert await cache.get(REAL.access_key) == REAL
        assert len(meta.calls) == calls  # still cached

    asyncio.run(run())


def test_negative_entries_expire_quickly() -> None:
    meta, clock = FakeMeta(), FakeClock()
    cache = make(meta, clock, negative_ttl=2.0)

    async def run() -> None:
        assert await cache.get("NEWKEY0000000001") is None
        assert await cache.get("NEWKEY0000000001") is None
        assert meta.calls == ["NEWKEY0000000001"]
        clock.now += 2.5
        assert await cache.get("NEWKEY0000000001") is None
        assert len(meta.calls) == 2

    asyncio.run(run())


def test_concurrent_lookups_of_one_key_share_one_read() -> None:
    meta, clock = FakeMeta(delay=0.01), FakeClock()
    cache = make(meta, clock)

    async def run() -> None:
        results = await asyncio.gather(*(cache.get(REAL.access_key) for _ in range(100)),
                                       *(cache.get("BOGUSKEY00000001") for _ in range(100)))
        assert results[:100] == [REAL] * 100 and results[100:] == [None] * 100

    asyncio.run(run())
    assert sorted(meta.calls) == sorted([REAL.access_key, "BOGUSKEY00000001"])


@pytest.mark.parametrize("key", ["A" * (MAX_ACCESS_KEY_LENGTH + 1), "A" * 100_000, "", "key with space",
                                 "k\x00ey", "ключ"])
def test_impossible_keys_refused_without_lookup(key: str) -> None:
    meta, clock = FakeMeta(), FakeClock()
    cache = make(meta, clock)
    with pytest.raises(InvalidAccessKeyId) as info:
        asyncio.run(cache.get(key))
    assert meta.calls == [] and len(info.value.extra["AWSAccessKeyId"]) <= MAX_ACCESS_KEY_LENGTH


def test_lookup_errors_reach_every_waiter_and_are_not_cached() -> None:
    clock = FakeClock()
    calls: list[str] = []

    async def failing(key: str) -> Credential | None:
        calls.append(key)
        await asyncio.sleep(0.01)
        raise RuntimeError("metadata down")

    cache = CredentialCache(failing, clock=clock)

    async def run() -> None:
        results = await asyncio.gather(*(cache.get("SOMEKEY000000001") for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        with pytest.raises(RuntimeError):
            await cache.get("SOMEKEY000000001")

    asyncio.run(run())
    assert len(calls) == 2


def test_gateway_context_floods_cost_bounded_metadata_reads() -> None:
    from gateway.context import GatewayContext
    from objstore.config import GatewayConfig

    meta = FakeMeta()
    # The gateway's configured (bootstrap) key is registered in the metadata service and
    # looked up there like any other key, so deleting it revokes it.
    ctx = GatewayContext(GatewayConfig("gw", "s", ("127.0.0.1:1",), access_key=REAL.access_key,
                                       secret_key=REAL.secret_key),
                         meta, SimpleNamespace(call_seconds=10.0), None, None, None)  # type: ignore[arg-type]

    async def run() -> int:
        assert (await ctx.credential(REAL.access_key)).secret_key == REAL.secret_key
        slowed = 0
        for i in range(2500):
            try:
                assert await ctx.credential(f"BOGUSKEY{i:012d}") is None
            except SlowDown:
                slowed += 1
        assert (await ctx.credential(REAL.access_key)).secret_key == REAL.secret_key  # cached: no budget needed
        return slowed

    slowed = asyncio.run(run())
    assert slowed > 0 and len(meta.calls) <= 200


class DownMeta(FakeMeta):
    """Answers until ``down`` is set, then fails like a metadata service without a majority."""

    down = False

    async def get_credential(self, access_key: str) -> Credential | None:
        self.calls.append(access_key)
        if self.down:
            raise ServiceUnavailable("no metadata leader")
        return REAL if access_key == REAL.access_key else None


def test_known_keys_are_served_stale_within_the_window_while_the_metadata_service_is_down() -> None:
    meta, clock = DownMeta(), FakeClock()
    cache = make(meta, clock, ttl=5.0, stale_window=300.0)
    assert asyncio.run(cache.get(REAL.access_key)) == REAL
    meta.down = True
    clock.now += 100.0
    assert asyncio.run(cache.get(REAL.access_key)) == REAL
    assert cache.stale_age == pytest.approx(95.0)
    asked = len(meta.calls)
    clock.now += 1.0  # the outage is recent: served without asking again
    assert asyncio.run(cache.get(REAL.access_key)) == REAL
    assert len(meta.calls) == asked
    clock.now += 300.0  # past the window: the failure surfaces
    with pytest.raises(ServiceUnavailable):
        asyncio.run(cache.get(REAL.access_key))
    meta.down = False
    assert asyncio.run(cache.get(REAL.access_key)) == REAL and cache.stale_age == 0.0


def test_without_a_stale_window_an_outage_fails_at_once() -> None:
    meta, clock = DownMeta(), FakeClock()
    cache = make(meta, clock, ttl=5.0)
    asyncio.run(cache.get(REAL.access_key))
    meta.down = True
    clock.now += 6.0
    with pytest.raises(ServiceUnavailable):
        asyncio.run(cache.get(REAL.access_key))
