"""Multipart upload records, cached briefly by the gateway for UploadPart.

An upload's record (owner, policy, checksum algorithm, headers of the future object) never
changes once created, so every part of an upload may use one fetched record: this saves a
linearizable metadata read per part. What can change is whether the upload still exists;
the cache never decides that: a part of an upload completed or aborted meanwhile is refused
when it is recorded (NoSuchUpload, its blobs deleted), as before.

Invariants: at most ``max_entries`` records (the oldest go first); a record is served for
``ttl`` seconds after it was fetched; concurrent misses for one upload share one fetch; a
failed fetch (NoSuchUpload, an outage) is not cached.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Awaitable, Callable

from metadata.api.upload_records import MultipartUpload

UPLOAD_TTL = 30.0
MAX_UPLOADS = 4096

Fetch = Callable[[str, str, str], Awaitable[MultipartUpload]]


class UploadCache:
    def __init__(self, fetch: Fetch, *, ttl: float = UPLOAD_TTL, max_entries: int = MAX_UPLOADS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, asyncio.Future]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, bucket: str, key: str, upload_id: str) -> MultipartUpload:
        """The upload's record, fetched or cached; raises what the fetch raises (NoSuchUpload)."""
        ids = (bucket, key, upload_id)
        now = self._clock()
        hit = self._entries.get(ids)
        if hit is not None and hit[0] > now:
            return await asyncio.shield(hit[1])
        fut = asyncio.ensure_future(self._fetch(bucket, key, upload_id))
        fut.add_done_callback(lambda done: self._drop_failed(ids, done))
        self._entries[ids] = (now + self.ttl, fut)
        self._entries.move_to_end(ids)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        # A caller that goes away (its request cancelled) leaves the fetch running for the
        # others waiting on it: cancelling it would cancel their requests too.
        return await asyncio.shield(fut)

    def _drop_failed(self, ids: tuple[str, str, str], fut: asyncio.Future) -> None:
        if (fut.cancelled() or fut.exception() is not None) and self._entries.get(ids, (0, None))[1] is fut:
            del self._entries[ids]

    def forget(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop an upload this gateway completed or aborted."""
        self._entries.pop((bucket, key, upload_id), None)
