"""A metadata client's strong version lookups, coalesced while one is in flight (``POST /v1/objects``).

Every :meth:`metadata.api.client.MetadataClient.lookup_object` (the version read of a strong
GET or HEAD) goes through one lane (:class:`objstore.coalescing.Lanes`): a lookup that finds
none in flight goes at once, alone (``GET /v1/object``, as without coalescing); those that
come meanwhile go together in one ``POST /v1/objects`` after it (at most :data:`MAX_BATCH`).
The leader answers them all from one strong read (one lease check or ReadIndex round) and
pays its HTTP serve cost once per call instead of once per lookup; the client pays one
call's framing and signature.

Invariants:
- Linearizable as a single read: a lookup is sent in a call that starts after the lookup
  was issued (those that come while a call is in flight wait for the next one), and the
  leader takes its read index when it serves that call, so an answer is never older than
  a write acknowledged before the lookup began.
- A caller gets what a single call would give it: its lookup's answer or its own error
  (NoSuchKey for one key does not fail the others); a call that fails (no leader before
  the deadline, ...) fails every lookup it carried with that error. A follower answers
  NotLeader for the whole call, which the client follows to the leader as for any call.
- Bounded: at most :data:`MAX_WAITING` lookups wait (more go alone). In time as a single
  call: a caller is answered within the client's deadline of asking. Lookups wait only
  behind a call that has run less than half the deadline; behind one that has run longer
  (no leader, a leader cut off from its majority) they go in a call of their own, given what
  is left of their deadline (still a call that starts after they were issued).
- A metadata service without the route (older than the client: 404/405) gets single calls;
  the route is tried again :data:`objstore.coalescing.RETRY_ROUTE_AFTER` seconds later.
- ``OBJSTORE_READ_BATCH=0`` in a process's environment turns coalescing off there.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Awaitable, Callable

from objstore.coalescing import Lanes, MissingRoutes, background_spawner
from objstore.errors import ObjstoreError, error_from_code

ENV = "OBJSTORE_READ_BATCH"
ONE, MANY = "/v1/object", "/v1/objects"
MAX_BATCH = 256  # lookups in one call (metadata.lookup_batch_http.MAX_LOOKUPS)
MAX_WAITING = 4096  # lookups waiting for the call in flight; more go alone
MAX_ITEM_BYTES = 2 << 10  # larger lookups go alone: 256 of these stay below the front's 1 MiB body

Lookup = tuple[str, str, "str | None"]  # (bucket, key, version_id)
# (path, query or JSON body, seconds) -> the JSON answer within those seconds; retries inside
Get = Callable[[str, dict[str, Any], float], Awaitable[Any]]
Post = Callable[[str, bytes, float], Awaitable[Any]]


def enabled() -> bool:
    """Whether this process coalesces lookups (``OBJSTORE_READ_BATCH`` is not "0")."""
    return os.environ.get(ENV, "1") != "0"


def encode(lookup: Lookup) -> bytes:
    """One lookup as it goes in a batch body."""
    bucket, key, vid = lookup
    d: dict[str, Any] = {"bucket": bucket, "key": key}
    if vid is not None:
        d["version_id"] = vid
    return json.dumps(d, ensure_ascii=False).encode()


def batch_body(items: list[bytes]) -> bytes:
    """The body of ``POST /v1/objects`` for lookups encoded by :func:`encode`."""
    return b'{"lookups":[' + b",".join(items) + b"]}"


def result_of(r: Any) -> dict[str, Any] | ObjstoreError:
    """A batch answer's entry: the lookup's answer (an ObjectLookup's wire form) or its error."""
    if isinstance(r, dict) and "value" in r:
        return r["value"]
    e = r.get("error") if isinstance(r, dict) else None
    if not isinstance(e, dict):
        return error_from_code("InternalError", f"malformed lookup result {str(r)[:200]!r}")
    return error_from_code(e.get("code", "InternalError"), e.get("message"), e.get("extra"))


class LookupBatcher:
    """``get`` and ``post`` send one signed call, retried across members until the seconds
    they are given are over (:meth:`MetadataClient._call`); ``timeout``: the client's deadline."""

    def __init__(self, get: Get, post: Post, *, timeout: float, max_batch: int = MAX_BATCH,
                 max_waiting: int = MAX_WAITING, clock: Callable[[], float] = time.monotonic) -> None:
        self._get = get
        self._post = post
        self._lanes: Lanes[None, tuple[Lookup, bytes], dict[str, Any]] = Lanes(
            self._one, self._many, background_spawner(), max_batch=max_batch, max_waiting=max_waiting,
            timeout=timeout, clock=clock, describe=lambda _: "metadata lookup")
        self._missing: MissingRoutes[None] = MissingRoutes(clock)  # the service lacked the batch route

    @property
    def calls(self) -> int:
        """Calls made through the lane (lookups sent / calls shows the coalescing)."""
        return self._lanes.calls

    async def lookup(self, bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
        """The wire form of the ObjectLookup ``GET /v1/object`` gives; raises its error."""
        item: Lookup = (bucket, key, version_id)
        data = encode(item)
        if len(data) > MAX_ITEM_BYTES:
            return await self._one(None, (item, data), self._lanes.timeout)
        return await self._lanes.submit(None, (item, data))

    async def _one(self, _: None, item: tuple[Lookup, bytes], seconds: float) -> dict[str, Any]:
        bucket, key, vid = item[0]
        return await self._get(ONE, {"bucket": bucket, "key": key, "version_id": vid}, seconds)

    async def _many(self, _: None, items: list[tuple[Lookup, bytes]],
                    seconds: float) -> list[dict[str, Any] | BaseException]:
        if self._missing.single(None):
            return await self._each_alone(items, seconds)
        end = time.monotonic() + seconds
        try:
            answer = await self._post(MANY, batch_body([data for _, data in items]), seconds)
        except ObjstoreError as err:
            if not self._missing.note(None, err):
                raise
            return await self._each_alone(items, max(end - time.monotonic(), 0.001))
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(items):
            raise ObjstoreError(f"{len(results or ())} results for {len(items)} lookups")
        return [result_of(r) for r in results]

    async def _each_alone(self, items: list[tuple[Lookup, bytes]],
                          seconds: float) -> list[dict[str, Any] | BaseException]:
        return list(await asyncio.gather(*(self._one(None, i, seconds) for i in items), return_exceptions=True))
