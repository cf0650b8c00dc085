"""The gateway's cache of multipart upload records (UploadPart)."""
from __future__ import annotations

import asyncio

import pytest

from gateway.upload_cache import UploadCache
from metadata.api.upload_records import MultipartUpload
from objstore.errors import NoSuchUpload


class Meta:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.gone: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def get(self, bucket: str, key: str, upload_id: str) -> MultipartUpload:
        self.calls.append((bucket, key, upload_id))
        if self.gate is not None:
            await self.gate.wait()
        if upload_id in self.gone:
            raise NoSuchUpload()
        return MultipartUpload(bucket, key, upload_id, 1.0, "owner")


async def test_parts_of_one_upload_share_one_fetch_until_the_ttl() -> None:
    meta, now = Meta(), [0.0]
    cache = UploadCache(meta.get, ttl=30, clock=lambda: now[0])
    meta.gate = asyncio.Event()
    waiting = [asyncio.ensure_future(cache.get("b", "k", "u")) for _ in range(4)]
    await asyncio.sleep(0)
    meta.gate.set()
    assert {u.upload_id for u in await asyncio.gather(*waiting)} == {"u"}
    assert await cache.get("b", "k", "u") and len(meta.calls) == 1
    now[0] = 31.0
    await cache.get("b", "k", "u")
    assert len(meta.calls) == 2


async def test_a_missing_upload_is_not_cached_and_forget_drops_one() -> None:
    meta = Meta()
    cache = UploadCache(meta.get)
    meta.gone.add("u")
    for _ in range(2):
        with pytest.raises(NoSuchUpload):
            await cache.get("b", "k", "u")
    assert len(meta.calls) == 2 and len(cache) == 0
    await cache.get("b", "k", "v")
    cache.forget("b", "k", "v")
    await cache.get("b", "k", "v")
    assert len(meta.calls) == 4


async def test_the_cache_is_bounded() -> None:
    meta = Meta()
    cache = UploadCache(meta.get, max_entries=3)
    for i in range(10):
        await cache.get("b", "k", f"u{i}")
    assert len(cache) == 3
    await cache.get("b", "k", "u9")  # the newest stay
    assert len(meta.calls) == 10
    await cache.get("b", "k", "u0")  # the oldest went
    assert len(meta.calls) == 11


async def test_a_caller_that_goes_away_leaves_the_shared_fetch_to_the_others() -> None:
    meta = Meta()
    cache = UploadCache(meta.get)
    meta.gate = asyncio.Event()
    first = asyncio.ensure_future(cache.get("b", "k", "u"))  # starts the fetch
    await asyncio.sleep(0)
    second = asyncio.ensure_future(cache.get("b", "k", "u"))  # waits on the same fetch
    await asyncio.sleep(0)
    first.cancel()  # its request went away
    await asyncio.sleep(0)
    meta.gate.set()
    assert (await second).upload_id == "u"
    assert first.cancelled() and len(meta.calls) == 1 and len(cache) == 1
